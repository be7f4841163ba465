#!/usr/bin/env python
"""Steady-state RNA velocity of an .h5ad as the MTL notebook's layout (`scfactor.mtl.cli.mtl_velocity`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.mtl.cli import mtl_velocity  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(mtl_velocity))
