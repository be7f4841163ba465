#!/usr/bin/env python
"""Top gene loadings per factor of one layer (seed 002's plot_gene_loading on varm['beta_l<l>'])."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli  # noqa: E402
from scfactor.core.errors import InputError  # noqa: E402
from scfactor.layers_plots import gene_loading_clustermap, load_fit, save_grid  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="layers .h5ad (varm['beta_l<level>'])")
    p.add_argument("--level", type=int, required=True, help="layer number")
    p.add_argument("--top-n", type=int, default=10, help="top genes per factor")
    p.add_argument("--max-thresh", type=float, default=None, help="clip loadings above this")
    p.add_argument("--title", default=None)
    p.add_argument("--output", nargs="+", required=True, help="figure file(s): .png, .pdf")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    if args.top_n < 1:
        raise InputError(args.input, f"--top-n must be >= 1, got {args.top_n}")
    adata, beta = load_fit(args.input, "beta", args.level)
    title = args.title or f"{Path(args.input).stem}: top {args.top_n} genes per factor, beta_l{args.level}"
    grid = gene_loading_clustermap(beta, adata.var_names, args.level, title, top_n=args.top_n,
                                   max_thresh=args.max_thresh)
    save_grid(grid, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
