#!/usr/bin/env python
"""Figures of seed 001: test R2 per gene, MTL vs lasso and MTL vs lambda = 0 per tissue; R2 per gene cluster."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli, io  # noqa: E402
from scfactor.models.mtl_report import cluster_figure, comparison_figure  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--r2", required=True, help="r2.tsv from mtl_aggregate")
    p.add_argument("--dataset", default="", help="name used in the titles")
    p.add_argument("--reference-model", default="tracenorm")
    p.add_argument("--comparison", nargs="+", required=True, help="MTL vs lasso / lambda=0 figure (.png, .pdf)")
    p.add_argument("--clusters", nargs="+", required=True, help="R2 per cluster figure (.png, .pdf)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    import matplotlib
    matplotlib.use("Agg")
    r2 = io.read_table(args.r2, sep="\t", dtype={"gene": str, "tissue": str})
    io.require_columns(r2, ["tissue", "gene", "cluster", "rep", "model", "r2", "lasso_r2"], args.r2, "R2 table")
    if r2.empty:
        from scfactor.core.errors import InputError
        raise InputError(args.r2, "R2 table is empty")
    for paths, make in ((args.comparison, comparison_figure), (args.clusters, cluster_figure)):
        for path in paths:
            io.save_figure(make(r2, args.dataset, args.reference_model), path)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
