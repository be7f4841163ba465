#!/usr/bin/env python
"""densify fan-out: train (`scfactor.densify.cli.densify_train`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.densify.cli import densify_train  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(densify_train))
