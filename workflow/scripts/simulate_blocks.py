#!/usr/bin/env python
"""Simulate seed 002's Poisson-Gamma block counts (generate_data(N, K, M, mode='block')).

Writes an ``.h5ad`` (CSR int32 counts in ``X``, ``obs['block']``/``var['block']`` labels, truth in
``obsm['theta_true']`` (cells x K) and ``varm['beta_true']`` (genes x K), parameters in
``uns['simulate']``) and, with ``--nnmf-h5``, the same counts in neuralNMF's ``write_h5`` layout.
Same seed, same numbers.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli, io  # noqa: E402
from scfactor.core.errors import ScfactorError  # noqa: E402
from scfactor.simulate_blocks import MODES, generate_data, to_anndata, write_nnmf_h5  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--n-cells", type=int, default=1000, help="N, cells")
    p.add_argument("--n-genes", type=int, default=2000, help="M, genes")
    p.add_argument("--n-factors", type=int, default=10, help="K, factors / blocks")
    p.add_argument("--mode", default="block", choices=MODES)
    p.add_argument("--alpha", type=float, default=1.0, help="background theta shape")
    p.add_argument("--eps", type=float, default=2.0, help="theta block boost")
    p.add_argument("--beta-shape", type=float, default=2.0, help="background beta shape")
    p.add_argument("--beta-eps", type=float, default=4.0, help="beta block boost")
    p.add_argument("--noise-prop", type=float, default=0.0, help="fraction of genes without a block")
    p.add_argument("--output", required=True, help="counts + truth .h5ad")
    p.add_argument("--nnmf-h5", default=None, help="also write the counts in neuralNMF's write_h5 layout")
    p.set_defaults(seed=42)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    params = {k: getattr(args, k) for k in ("n_cells", "n_genes", "n_factors", "mode", "alpha", "eps",
                                            "beta_shape", "beta_eps", "noise_prop", "seed")}
    try:
        sim = generate_data(args.n_cells, args.n_factors, args.n_genes, mode=args.mode, seed=args.seed,
                            alpha=args.alpha, eps=args.eps, beta_shape=args.beta_shape,
                            beta_eps=args.beta_eps, noise_prop=args.noise_prop)
    except ValueError as exc:
        raise ScfactorError(f"simulate_blocks: {exc}") from None
    adata = to_anndata(sim, params)
    cli.LOG.info("simulated %d cells x %d genes, K=%d (%s), mean count %.2f", adata.n_obs, adata.n_vars,
                 args.n_factors, args.mode, float(sim.x.mean()))
    with contextlib.ExitStack() as stack:  # both files appear together or not at all
        if args.nnmf_h5:
            tmp = stack.enter_context(io.atomic_output(args.nnmf_h5))
            write_nnmf_h5(tmp, list(adata.obs_names), list(adata.var_names), adata.X)
        io.write_h5ad(adata, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
