#!/usr/bin/env python
"""Fit seed 002's multilayer NMF (X ~ theta1 theta2 ... beta) to a preprocessed .h5ad.

Output ``.h5ad`` (cells x genes, no X): ``uns['theta_l<l>']`` (cells x k1, then k_{l-1} x k_l),
``varm['beta_l<l>']`` (genes x k_l), ``obsm['X_layers']`` (cells x k_L: theta1 ... theta_L),
``obs['layers_factor']`` (argmax factor), ``uns['layers']`` (options, loss trace, fit time).
Tables: the loss per epoch; metrics (``ari_label``: ARI of ``obs['layers_factor']`` vs ``obs['label']``
when labelled) and, when the input carries a simulation's truth
(``obsm['theta_true']``, ``varm['beta_true']``, ``obs['block']``), factor-recovery metrics.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scfactor.core import cli, io  # noqa: E402
from scfactor.preprocess import contract  # noqa: E402
from scfactor.core.device import TORCH_CHOICES, torch_device  # noqa: E402
from scfactor.core.errors import InputError, ScfactorError  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="preprocessed .h5ad (see docs/CONVENTIONS.md)")
    p.add_argument("--genes", default="all", help="all | liger | hvg | file with one gene per line")
    p.add_argument("--layer", default="counts", help="layer to factorise (X = log-normalised)")
    p.add_argument("--layers", type=int, nargs="+", default=[20, 10], help="factors per layer")
    p.add_argument("--solver", default="poisson", choices=("nnls", "poisson"), help="beta solver")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate of the thetas")
    p.add_argument("--inner-iters", type=int, default=2, help="beta updates per layer and epoch")
    p.add_argument("--device", default="auto", choices=TORCH_CHOICES)
    p.add_argument("--output", required=True, help="fitted factors .h5ad")
    p.add_argument("--loss-table", required=True, help="loss per epoch .tsv")
    p.add_argument("--metrics", required=True, help="metrics .tsv (recovery vs truth when present)")
    return p


def truth_of(adata):
    """(theta_true, beta_true, blocks) when the input is a block simulation, else None."""
    if "theta_true" in adata.obsm and "beta_true" in adata.varm and "block" in adata.obs:
        return (np.asarray(adata.obsm["theta_true"]), np.asarray(adata.varm["beta_true"]),
                adata.obs["block"].astype(str).to_numpy())
    return None


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    import torch
    from scfactor.models.layered_nmf import fit_layered_nmf, recovery_metrics, validate_layers
    torch.set_num_threads(max(1, args.threads))
    device = torch_device(args.device)
    if args.epochs < 1 or args.lr <= 0 or args.inner_iters < 1:
        raise ScfactorError("--epochs and --inner-iters must be >= 1 and --lr > 0")

    adata = contract.load_preprocessed(args.input, genes=args.genes, layer=args.layer, integer=False)
    try:
        layers = validate_layers(args.layers, adata.n_obs, adata.n_vars)
    except ValueError as exc:
        raise InputError(args.input, f"{exc} ({adata.n_obs} cells x {adata.n_vars} genes)") from None
    if float(adata.X.sum()) == 0:
        raise InputError(args.input, f"layer {args.layer!r} is all zeros")
    log = cli.LOG
    log.info("fitting %s layers %s (%s beta) on %d cells x %d genes, device %s", args.input, layers,
             args.solver, adata.n_obs, adata.n_vars, device)
    try:
        res = fit_layered_nmf(adata.X, layers=layers, solver=args.solver, epochs=args.epochs, lr=args.lr,
                              seed=args.seed, device=device, inner_iters=args.inner_iters, log=log,
                              log_every=max(1, args.epochs // 10))
    except FloatingPointError as exc:
        raise ScfactorError(f"{args.input}: {exc}") from None
    log.info("fit done in %.2f s wall, %.2f s CPU; loss %.6g -> %.6g", res.seconds, res.cpu_seconds,
             res.loss[0], res.loss[-1])

    import anndata as ad
    out = ad.AnnData(obs=adata.obs.copy(), var=adata.var.copy())
    for level, (theta, beta) in enumerate(zip(res.thetas, res.betas), start=1):
        out.uns[f"theta_l{level}"] = theta
        out.varm[f"beta_l{level}"] = beta
    cells = res.cell_factors()
    out.obsm["X_layers"] = cells
    weighted = cells * res.betas[-1].sum(axis=0)
    out.obs["layers_factor"] = pd.Categorical([f"f{j}" for j in weighted.argmax(1)],
                                              categories=[f"f{j}" for j in range(layers[-1])])
    out.uns["layers"] = {"layers": layers, "solver": args.solver, "epochs": args.epochs, "lr": args.lr,
                         "inner_iters": args.inner_iters, "seed": args.seed, "genes": args.genes,
                         "layer": args.layer, "input": str(args.input), "loss": res.loss,
                         "seconds": res.seconds, "cpu_seconds": res.cpu_seconds, "device": str(device)}

    loss = pd.DataFrame({"epoch": np.arange(1, len(res.loss) + 1), "loss": res.loss})
    metrics = {"n_cells": adata.n_obs, "n_genes": adata.n_vars, "final_loss": res.loss[-1]}
    if "label" in adata.obs and adata.obs["label"].notna().any():
        from sklearn.metrics import adjusted_rand_score
        known = adata.obs["label"].notna().to_numpy()
        metrics["ari_label"] = adjusted_rand_score(adata.obs["label"].astype(str).to_numpy()[known],
                                                   weighted.argmax(1)[known])
    truth = truth_of(adata)
    if truth is not None:
        metrics.update(recovery_metrics(res, *truth))
        log.info("recovery: %s", ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if k.startswith(("ari", "beta_m"))))
    table = pd.DataFrame({"metric": list(metrics), "value": [f"{float(v):.6g}" for v in metrics.values()]})
    io.write_table(loss.assign(loss=loss["loss"].map(lambda v: f"{v:.8g}")), args.loss_table)
    io.write_table(table, args.metrics)
    io.write_h5ad(out, args.output)
    log.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
