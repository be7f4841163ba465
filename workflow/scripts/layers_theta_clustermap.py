#!/usr/bin/env python
"""Clustermap of one layer's theta of a multilayer NMF fit (`scfactor.layers.cli.layers_theta_clustermap`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.layers.cli import layers_theta_clustermap  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(layers_theta_clustermap))
