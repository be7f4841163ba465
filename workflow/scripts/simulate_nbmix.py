#!/usr/bin/env python
"""Simulate seed 004's negative-binomial mixture (counts in X, obs['label'] = true component, truth in varm/obsm)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli, io  # noqa: E402
from scfactor.core.errors import ScfactorError  # noqa: E402
from scfactor.models.nbmix_simulate import simulate_anndata  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, required=True, help="number of cells")
    p.add_argument("--p", type=int, required=True, help="number of genes")
    p.add_argument("--k", type=int, required=True, help="number of mixture components")
    p.add_argument("--s", type=float, default=1e4, help="size factor used to draw the counts (seed: 1e4)")
    p.add_argument("--name", default="nbmix", help="simulation name recorded in uns['simulate']")
    p.add_argument("--output", required=True, help="output .h5ad")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    for key in ("n", "p", "k"):
        if getattr(args, key) < 1:
            raise ScfactorError(f"--{key} must be >= 1 (got {getattr(args, key)})")
    if args.s <= 0:
        raise ScfactorError(f"--s must be > 0 (got {args.s})")
    adata = simulate_anndata(args.n, args.p, args.k, args.s, args.seed, args.name)
    empty = int((adata.X.sum(axis=1) == 0).sum())
    if empty:
        cli.LOG.warning("%d simulated cells have no counts", empty)
    io.write_h5ad(adata, args.output)
    cli.LOG.info("wrote %s: %d cells x %d genes, k=%d, seed=%d", args.output, args.n, args.p, args.k, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
