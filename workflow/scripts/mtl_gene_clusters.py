#!/usr/bin/env python
"""Balanced gene clusters of one tissue (KMeansConstrained) (`scfactor.mtl.cli.mtl_gene_clusters`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.mtl.cli import mtl_gene_clusters  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(mtl_gene_clusters))
