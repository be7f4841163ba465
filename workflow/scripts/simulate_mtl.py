#!/usr/bin/env python
"""Simulate data in the trace-norm MTL notebook's layout (`scfactor.mtl.cli.simulate_mtl`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.mtl.cli import simulate_mtl  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(simulate_mtl))
