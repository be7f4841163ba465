#!/usr/bin/env python
"""Prior-masked GRN for one cell-state transition (`scfactor.grn.cli.grn`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.grn.cli import grn  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(grn))
