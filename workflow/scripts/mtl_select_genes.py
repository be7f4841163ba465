#!/usr/bin/env python
"""Select genes for MTL (seed 001 step 3): in the lasso table, velocity in >= --min-cells cells, seeded random --num-genes."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from scfactor.core import cli, io  # noqa: E402
from scfactor import mtl_layout as L  # noqa: E402
from scfactor.models.mtl_baseline import select_genes  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--layout", required=True, help="seed-layout root")
    p.add_argument("--tissue", required=True)
    p.add_argument("--lasso", required=True, help="lasso_r2.csv of the tissue")
    p.add_argument("--min-cells", type=int, default=100)
    p.add_argument("--num-genes", type=int, default=500)
    p.add_argument("--output", required=True, help="genes.tsv (gene_ensembl)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    lasso = io.read_table(args.lasso, dtype={"gene_ensembl": str, "tissue": str})
    io.require_columns(lasso, ["tissue", "gene_ensembl"], args.lasso, "lasso table")
    data = L.load_tissue(args.layout, args.tissue)
    genes = select_genes(data, lasso, args.min_cells, args.num_genes, args.seed, path=args.lasso)
    io.write_table(pd.DataFrame({"gene_ensembl": genes}), args.output)
    cli.LOG.info("tissue %s: %d genes selected", args.tissue, len(genes))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
