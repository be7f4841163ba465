#!/usr/bin/env python
"""Aggregate MTL shards (seed 001): one R2 table joined with the lasso baseline, and per-tissue summaries.

r2.tsv: tissue, gene, cluster, rep, model, lambda, r2, n_train, n_test, lasso_r2 (same split).
summary.tsv: per tissue and model: genes, mean/median R2, mean lasso R2, fraction of genes above
the lasso, and (when the lambda = 0 ablation ran) the mean gain over it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli, io  # noqa: E402
from scfactor.models.mtl_report import aggregate  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--shards", nargs="+", required=True, help="shard .tsv files")
    p.add_argument("--lasso", nargs="+", required=True, help="lasso_r2.csv files (one per tissue)")
    p.add_argument("--reference-model", default="tracenorm", help="model compared against the others")
    p.add_argument("--output", required=True, help="r2.tsv")
    p.add_argument("--summary", required=True, help="summary.tsv")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    shards = [io.read_table(p, sep="\t", dtype={"gene": str, "tissue": str}) for p in args.shards]
    for p, df in zip(args.shards, shards):
        io.require_columns(df, ["tissue", "gene", "cluster", "rep", "model", "lambda", "r2"], p, "shard table")
    lasso = [io.read_table(p, dtype={"gene_ensembl": str, "tissue": str}) for p in args.lasso]
    for p, df in zip(args.lasso, lasso):
        io.require_columns(df, ["tissue", "gene_ensembl", "rep", "r2"], p, "lasso table")
    table, summary = aggregate(shards, lasso, args.reference_model)
    io.write_table(table, args.output)
    io.write_table(summary, args.summary)
    for row in summary.itertuples():
        cli.LOG.info("%s %s: %d genes, mean R2 %.3f (lasso %.3f)", row.tissue, row.model, row.genes,
                     row.mean_r2, row.mean_lasso_r2)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
