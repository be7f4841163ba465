#!/usr/bin/env python
"""LIGER-style integration: iNMF (batch or online), quantile normalisation, Leiden and UMAP.

``--source counts``: one preprocessed .h5ad (``layers['counts']``, ``obs['batch']``,
``var['liger_selected']``). ``--source neumf``: one .h5ad per batch with a dense ``layers['neumf']``.
Writes an .h5ad with ``obsm['X_inmf']`` (H), ``obsm['X_inmf_norm']``, ``varm['W']``, ``varm['V_<batch>']``,
``obs['leiden']``, ``obsm['X_umap']``, the objective trace and metrics in ``uns['inmf']``, and a
metrics TSV (alignment before/after quantile normalisation, agreement, ARI/NMI per batch with the
number of labelled cells).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli, device, io  # noqa: E402
from scfactor.core.errors import ScfactorError  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.set_defaults(seed=1)
    p.add_argument("--source", choices=("counts", "neumf"), default="counts", help="input kind")
    p.add_argument("--input", nargs="+", required=True,
                   help="counts: one preprocessed .h5ad; neumf: one .h5ad per batch")
    p.add_argument("--batches", nargs="*", default=None, help="counts: batches to integrate (default: all)")
    p.add_argument("--layer", default=None, help="input layer (default: counts / neumf by source)")
    p.add_argument("--genes", choices=("liger", "all"), default="liger",
                   help="counts: var['liger_selected'] genes or all genes")
    p.add_argument("--mode", choices=("batch", "online"), default="batch",
                   help="batch: all cells in memory; online: stream a backed .h5ad (counts only)")
    p.add_argument("--k", type=int, default=20, help="number of factors")
    p.add_argument("--lambda", dest="lam", type=float, default=5.0, help="penalty on batch-specific V_i")
    p.add_argument("--max-iters", type=int, default=30)
    p.add_argument("--thresh", type=float, default=1e-6, help="relative objective change to stop")
    p.add_argument("--nrep", type=int, default=1, help="restarts (seeds seed..seed+nrep-1); best kept")
    p.add_argument("--solver", choices=("hals", "anls"), default="hals",
                   help="block solver: HALS sweeps or exact NNLS by block principal pivoting")
    p.add_argument("--hals-sweeps", type=int, default=3, help="HALS sweeps per block update")
    p.add_argument("--online-epochs", type=int, default=5)
    p.add_argument("--online-minibatch", type=int, default=5000, help="cells per online minibatch")
    p.add_argument("--quantiles", type=int, default=50)
    p.add_argument("--min-cells", type=int, default=20, help="quantile norm: min cells per cluster")
    p.add_argument("--knn-k", type=int, default=20, help="quantile norm: kNN refinement neighbours")
    p.add_argument("--ref-batch", default=None, help="quantile norm reference (default: largest batch)")
    p.add_argument("--leiden-resolution", type=float, default=0.5)
    p.add_argument("--n-neighbors", type=int, default=20, help="kNN graph for Leiden and UMAP")
    p.add_argument("--agreement-dims", type=int, default=20, help="NMF dims of each batch alone")
    p.add_argument("--agreement-k", type=int, default=15)
    p.add_argument("--umap-min-dist", type=float, default=0.3)
    p.add_argument("--device", default="auto", choices=device.TORCH_CHOICES)
    p.add_argument("--output", required=True, help="integrated .h5ad")
    p.add_argument("--metrics", required=True, help="metrics .tsv")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    import torch
    torch.set_num_threads(max(1, args.threads))
    from scfactor import integration

    dev = device.torch_device(args.device)
    for name in ("k", "max_iters", "nrep", "hals_sweeps", "online_epochs", "online_minibatch",
                 "quantiles", "knn_k", "n_neighbors", "agreement_dims", "agreement_k"):
        if getattr(args, name) < 1:
            raise ScfactorError(f"--{name.replace('_', '-')} must be >= 1")
    if args.lam < 0:
        raise ScfactorError("--lambda must be >= 0")
    s = integration.Settings(
        k=args.k, lam=args.lam, max_iters=args.max_iters, thresh=args.thresh, nrep=args.nrep,
        seed=args.seed, solver=args.solver, hals_sweeps=args.hals_sweeps, quantiles=args.quantiles,
        min_cells=args.min_cells, knn_k=args.knn_k, ref_batch=args.ref_batch,
        leiden_resolution=args.leiden_resolution, n_neighbors=args.n_neighbors,
        agreement_dims=args.agreement_dims, agreement_k=args.agreement_k, umap_min_dist=args.umap_min_dist)
    if args.source == "counts":
        if len(args.input) != 1:
            raise ScfactorError(f"--source counts takes one preprocessed .h5ad, got {len(args.input)}")
        layer = args.layer or "counts"
        if args.mode == "online":
            adata, table = integration.integrate_online(
                args.input[0], args.batches, s, layer=layer, genes=args.genes, epochs=args.online_epochs,
                minibatch=args.online_minibatch, device=dev, source="counts")
        else:
            b = integration.load_counts(args.input[0], args.batches, layer=layer, genes=args.genes)
            adata, table = integration.integrate(b, s, device=dev, source="counts")
    else:
        if args.mode == "online":
            raise ScfactorError("--mode online streams one backed counts .h5ad; use --mode batch for neumf")
        b = integration.load_neumf(args.input, layer=args.layer or "neumf")
        adata, table = integration.integrate(b, s, device=dev, source="neumf")
    adata.uns["inmf"]["mode"] = args.mode
    adata.uns["inmf"]["device"] = str(dev)
    io.write_table(table, args.metrics)
    io.write_h5ad(adata, args.output)
    cli.LOG.info("wrote %s and %s", args.output, args.metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
