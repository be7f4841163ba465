#!/usr/bin/env python
"""Simulate the multilayer NMF notebook's Poisson-Gamma block counts (`scfactor.layers.cli.simulate_blocks`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.layers.cli import simulate_blocks  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(simulate_blocks))
