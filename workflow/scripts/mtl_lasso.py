#!/usr/bin/env python
"""Per-gene lasso baseline (seed 001): LassoCV on standardised TF expression, test R2 on the MTL splits.

One tissue of a seed-layout root; genes with velocity in >= --min-cells cells and a column in the
activity tables (--seed: splits, shared with MTL, and the --max-genes subset); genes run in parallel (joblib, --threads). Writes lasso_r2.csv (tissue,
gene_ensembl, rep, alpha, r2, n_train, n_test), the table gene selection reads.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from scfactor.core import cli, io  # noqa: E402
from scfactor import mtl_layout as L  # noqa: E402
from scfactor.core.errors import InputError  # noqa: E402
from scfactor.models.mtl_baseline import candidate_genes, run_lasso  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--layout", required=True, help="seed-layout root")
    p.add_argument("--tissue", required=True)
    p.add_argument("--reps", type=int, default=1, help="replicate splits 0..reps-1")
    p.add_argument("--test-ratio", type=float, default=0.1)
    p.add_argument("--min-cells", type=int, default=100, help="genes need velocity in this many cells")
    p.add_argument("--max-genes", type=int, default=0, help="seeded subset of candidate genes (0 = all)")
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--n-alphas", type=int, default=20)
    p.add_argument("--max-iter", type=int, default=2000)
    p.add_argument("--output", required=True, help="lasso_r2.csv")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(1)
    data = L.load_tissue(args.layout, args.tissue)
    genes = candidate_genes(data, args.min_cells)
    if len(genes) == 0:
        raise InputError(data.files["velo"], f"tissue {args.tissue!r}: no gene has velocity in >= "
                                             f"{args.min_cells} cells and an activity column")
    if args.max_genes and len(genes) > args.max_genes:
        rng = np.random.default_rng(args.seed)
        genes = genes[np.sort(rng.choice(len(genes), size=args.max_genes, replace=False))]
    cli.LOG.info("lasso on %d genes x %d reps, %d TFs, %d threads", len(genes), args.reps, data.expr.shape[1],
                 args.threads)
    df = run_lasso(data, genes, list(range(args.reps)), test_ratio=args.test_ratio, seed=args.seed,
                   cv=args.cv, n_alphas=args.n_alphas, max_iter=args.max_iter, threads=args.threads)
    io.write_table(df, args.output)
    cli.LOG.info("median test R2 %.3f", float(df["r2"].median()))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
