#!/usr/bin/env python
"""Simulate batches sharing iNMF factors plus batch-specific factors (Poisson counts, with truth).

Writes one .h5ad: raw counts in X, obs['batch'], obs['label'] (planted groups), and the ground
truth: obsm['H_true'], obsm['Hspec_true'], varm['W_true'], varm['V_true_<batch>'],
varm['S_true_<batch>'], uns['simulate_batches']. Same seed -> same counts.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli  # noqa: E402
from scfactor.core.errors import ScfactorError  # noqa: E402
from scfactor.simulate_batches import SimSettings, write_simulation  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--n-cells", type=int, nargs="+", default=[500, 500], help="cells per batch (>= 2 batches)")
    p.add_argument("--n-genes", type=int, default=500)
    p.add_argument("--k-shared", type=int, default=6, help="shared factors (= planted cell groups)")
    p.add_argument("--k-specific", type=int, default=1, help="batch-only factors per batch")
    p.add_argument("--specific-fraction", type=float, default=0.3, help="cells loading a batch-only factor")
    p.add_argument("--library-size", type=float, default=1500.0, help="median UMIs per cell")
    p.add_argument("--v-fraction", type=float, default=0.1, help="non-zero fraction of each V_i")
    p.add_argument("--v-scale", type=float, default=0.5, help="scale of the non-zero V_i entries")
    p.add_argument("--batch-names", nargs="*", default=[], help="names of the batches (default b1..bN)")
    p.add_argument("--chunk", type=int, default=10000, help="cells generated and written at a time")
    p.add_argument("--output", required=True, help="output .h5ad")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    if len(args.n_cells) < 2 or min(args.n_cells) < 1:
        raise ScfactorError("--n-cells needs at least two positive batch sizes")
    if args.batch_names and len(args.batch_names) != len(args.n_cells):
        raise ScfactorError(f"--batch-names has {len(args.batch_names)} names for {len(args.n_cells)} batches")
    if len(set(args.batch_names)) != len(args.batch_names):
        raise ScfactorError("--batch-names must be distinct")
    blocks = args.k_shared + len(args.n_cells) * args.k_specific
    if args.k_shared < 1 or args.k_specific < 0 or args.n_genes < 2 * blocks:
        raise ScfactorError(f"--n-genes ({args.n_genes}) must be at least twice the number of factor "
                            f"blocks ({blocks}); --k-shared >= 1, --k-specific >= 0")
    if not 0 <= args.specific_fraction <= 1 or not 0 <= args.v_fraction <= 1:
        raise ScfactorError("--specific-fraction and --v-fraction must lie in [0, 1]")
    if args.library_size <= 0 or args.v_scale < 0 or args.chunk < 1:
        raise ScfactorError("--library-size must be > 0, --v-scale >= 0, --chunk >= 1")
    s = SimSettings(n_cells=tuple(args.n_cells), n_genes=args.n_genes, k_shared=args.k_shared,
                    k_specific=args.k_specific, specific_fraction=args.specific_fraction,
                    library_size=args.library_size, v_fraction=args.v_fraction, v_scale=args.v_scale,
                    batch_names=tuple(args.batch_names), seed=args.seed, chunk=args.chunk)
    info = write_simulation(s, args.output)
    cli.LOG.info("wrote %s: %d cells x %d genes, %d non-zeros, batches %s", args.output, info["cells"],
                 info["genes"], info["nnz"], ", ".join(info["batches"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
