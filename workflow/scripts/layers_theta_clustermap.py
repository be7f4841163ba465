#!/usr/bin/env python
"""Clustermap of one layer's theta from a multilayer NMF fit (seed 002: sns.clustermap(uns['theta_l<l>']))."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli  # noqa: E402
from scfactor.layers_plots import load_fit, save_grid, theta_clustermap  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="layers .h5ad (uns['theta_l<level>'])")
    p.add_argument("--level", type=int, required=True, help="layer number (1 = cells x k1)")
    p.add_argument("--max-rows", type=int, default=2000, help="seeded subsample of cells for layer 1")
    p.add_argument("--label", default="label", help="obs column colouring the cells (skipped if absent)")
    p.add_argument("--title", default=None)
    p.add_argument("--output", nargs="+", required=True, help="figure file(s): .png, .pdf")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    adata, theta = load_fit(args.input, "theta", args.level)
    labels = adata.obs[args.label].to_numpy() if args.label in adata.obs else None
    title = args.title or f"{Path(args.input).stem}: theta_l{args.level} ({theta.shape[0]} x {theta.shape[1]})"
    grid = theta_clustermap(theta, args.level, title, row_labels=labels, label_name=args.label,
                            max_rows=args.max_rows, seed=args.seed)
    save_grid(grid, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
