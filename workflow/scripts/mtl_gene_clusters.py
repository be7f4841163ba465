#!/usr/bin/env python
"""Balanced gene clusters (seed 001 step 4): KMeansConstrained on mean-imputed velocity, seeded.

Cluster sizes are floor(G/n) .. ceil(G/n). Writes clusters.tsv (gene_ensembl, cluster).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from scfactor.core import cli, io  # noqa: E402
from scfactor import mtl_layout as L  # noqa: E402
from scfactor.core.errors import InputError  # noqa: E402
from scfactor.models.mtl_baseline import cluster_genes  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--layout", required=True, help="seed-layout root")
    p.add_argument("--tissue", required=True)
    p.add_argument("--genes", required=True, help="genes.tsv from select_genes")
    p.add_argument("--n-clusters", type=int, default=20)
    p.add_argument("--output", required=True, help="clusters.tsv")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    sel = io.read_table(args.genes, dtype=str)
    io.require_columns(sel, ["gene_ensembl"], args.genes, "gene list")
    genes = sel["gene_ensembl"].to_numpy()
    if len(genes) == 0:
        raise InputError(args.genes, "lists no gene")
    data = L.load_tissue(args.layout, args.tissue, genes=genes)
    labels = cluster_genes(data.velo, args.n_clusters, args.seed, path=args.genes)
    df = pd.DataFrame({"gene_ensembl": genes, "cluster": labels})
    io.write_table(df, args.output)
    cli.LOG.info("tissue %s: %d genes in %d clusters (sizes %s)", args.tissue, len(genes), args.n_clusters,
                 ", ".join(map(str, df["cluster"].value_counts().sort_index().tolist())))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
