#!/usr/bin/env python
"""Figures of one GRN transition (`scfactor.grn.cli.grn_figures`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.grn.cli import grn_figures  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(grn_figures))
