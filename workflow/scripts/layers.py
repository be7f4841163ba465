#!/usr/bin/env python
"""Fit the multilayer NMF to a preprocessed .h5ad (`scfactor.layers.cli.layers`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.layers.cli import layers  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(layers))
