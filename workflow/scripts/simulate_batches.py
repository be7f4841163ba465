#!/usr/bin/env python
"""Simulator (c): batches sharing iNMF factors (`scfactor.integrate.cli.simulate_batches`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.integrate.cli import simulate_batches  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(simulate_batches))
