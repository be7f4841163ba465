#!/usr/bin/env python
"""Simulate the NB mixture of the model-based clustering notebook (`scfactor.nbmix.cli.simulate_nbmix`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.nbmix.cli import simulate_nbmix  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(simulate_nbmix))
