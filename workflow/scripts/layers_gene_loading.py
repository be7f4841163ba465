#!/usr/bin/env python
"""Top gene loadings per factor of one layer of a multilayer NMF fit (`scfactor.layers.cli.layers_gene_loading`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.layers.cli import layers_gene_loading  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(layers_gene_loading))
