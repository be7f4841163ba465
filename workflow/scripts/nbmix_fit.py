#!/usr/bin/env python
"""Cluster cells with a negative-binomial mixture (batch EM or amortised inference) and score it against labels.

Outputs: an .h5ad with obs['nbmix'] (cluster), obsm['nbmix_resp'] (responsibilities), varm['nbmix_log_mean']
and varm['nbmix_log_inv_disp'] ([genes, k]), uns['nbmix'] (mixing weights, log-likelihood trace, settings);
a one-row metrics TSV; the log-likelihood (EM) or ELBO (amortised) trace TSV.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scfactor.core import cli, io  # noqa: E402
from scfactor.core.device import TORCH_CHOICES, torch_device  # noqa: E402
from scfactor.core.errors import InputError, ScfactorError  # noqa: E402
from scfactor.models import nbmix_io  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    nbmix_io.add_data_args(p)
    p.add_argument("--k", type=int, required=True, help="number of mixture components")
    p.add_argument("--method", choices=("em", "amortized"), default="em")
    p.add_argument("--init", choices=("random", "kmeans", "leiden", "nmf"), default="kmeans")
    p.add_argument("--nrep", type=int, default=1, help="EM restarts (seeds seed..seed+nrep-1); best log-lik kept")
    p.add_argument("--max-iters", type=int, default=100, help="maximum EM rounds")
    p.add_argument("--tol", type=float, default=1e-6, help="stop when the relative log-lik change is below this")
    p.add_argument("--newton-steps", type=int, default=3, help="Newton steps per M step (warm started)")
    p.add_argument("--first-newton-steps", type=int, default=10, help="Newton steps of the first M step")
    p.add_argument("--n-pcs", type=int, default=30, help="PCs for the kmeans / leiden initialisations")
    p.add_argument("--leiden-resolution", type=float, default=1.0, help="resolution of the leiden initialisation")
    p.add_argument("--epochs", type=int, default=20, help="amortised: passes over the data")
    p.add_argument("--batch-size", type=int, default=64, help="amortised: minibatch size")
    p.add_argument("--lr", type=float, default=1e-3, help="amortised: Adam learning rate")
    p.add_argument("--hidden", type=int, default=128, help="amortised: encoder hidden units")
    p.add_argument("--init-subsample", type=int, default=500,
                   help="amortised: cells of the batch-EM fit that initialises the components (0 = random)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="EM arithmetic")
    p.add_argument("--device", choices=TORCH_CHOICES, default="auto")
    p.add_argument("--output", required=True, help="output .h5ad")
    p.add_argument("--metrics", required=True, help="one-row metrics .tsv")
    p.add_argument("--trace", required=True, help="log-likelihood / ELBO trace .tsv")
    return p


def check_args(args):
    for key in ("k", "nrep", "max_iters", "epochs", "batch_size", "hidden"):
        if getattr(args, key) < 1:
            raise ScfactorError(f"--{key.replace('_', '-')} must be >= 1 (got {getattr(args, key)})")
    if not 0 <= args.tol < 1:
        raise ScfactorError(f"--tol must be in [0, 1) (got {args.tol})")
    if args.lr <= 0:
        raise ScfactorError(f"--lr must be > 0 (got {args.lr})")


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    check_args(args)
    import torch
    from scfactor.models import nbmix
    torch.set_num_threads(max(1, args.threads))
    device = torch_device(args.device)
    dataset = args.dataset or Path(args.input).stem
    adata = nbmix_io.load_counts(args.input, batch=args.batch, genes=args.genes, layer=args.layer,
                                 drop_empty_cells=args.drop_empty_cells)
    if args.k > adata.n_obs:
        raise InputError(args.input, f"k={args.k} components but only {adata.n_obs} cells")
    labels = nbmix_io.labels_of(adata, args.labels)
    cli.LOG.info("%s: %d cells x %d genes, k=%d, method=%s, device=%s", dataset, adata.n_obs, adata.n_vars,
                 args.k, args.method, device)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    em_kwargs = dict(init=args.init, nrep=args.nrep, max_iters=args.max_iters, tol=args.tol,
                     newton_steps=args.newton_steps, first_newton_steps=args.first_newton_steps,
                     n_pcs=args.n_pcs, leiden_resolution=args.leiden_resolution, dtype=dtype)
    if args.method == "em":
        fit = nbmix.fit_em(adata.X, args.k, seed=args.seed, device=device, path=args.input, **em_kwargs)
        trace = pd.DataFrame({"round": np.arange(1, len(fit.trace) + 1), "loglik": fit.trace})
    else:
        _, fit = nbmix.fit_amortized(adata.X, args.k, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                     hidden=args.hidden, seed=args.seed, init_subsample=args.init_subsample,
                                     em_kwargs=em_kwargs, device=device, path=args.input)
        trace = pd.DataFrame({"epoch": np.arange(1, len(fit.trace) + 1), "elbo_per_cell": fit.trace})
    pred = fit.labels
    scores = nbmix_io.score(labels, pred, fit.resp, args.labels)
    info = {"k": args.k, "n_cells": adata.n_obs, "n_genes": adata.n_vars, "init": fit.init,
            "loglik": fit.loglik, "n_iter": fit.n_iter, "converged": fit.converged}
    table = nbmix_io.metrics_frame(dataset, f"nbmix_{args.method}", info, scores)
    cli.LOG.info("log-likelihood %.6g; %s", fit.loglik,
                 ", ".join(f"{k}={v:.4f}" for k, v in scores.items() if isinstance(v, float)))

    k = args.k
    adata.obs["nbmix"] = pd.Categorical([str(c) for c in pred], categories=[str(c) for c in range(k)])
    adata.obsm["nbmix_resp"] = fit.resp.astype(np.float32)
    adata.varm["nbmix_log_mean"] = fit.log_mean.T
    adata.varm["nbmix_log_inv_disp"] = fit.log_inv_disp.T
    adata.uns["nbmix"] = {
        "pi": np.asarray(fit.pi, dtype=float), "loglik": float(fit.loglik), "trace": np.asarray(fit.trace, float),
        "method": args.method, "init": fit.init, "k": k, "seed": args.seed, "n_iter": int(fit.n_iter),
        "converged": bool(fit.converged), "seconds": float(fit.seconds), "label_kind": args.labels, "dataset": dataset,
        "restarts": pd.DataFrame(fit.restarts).to_dict(orient="list") if fit.restarts else {},
    }
    io.write_table(trace, args.trace)
    io.write_table(table, args.metrics)
    io.write_h5ad(adata, args.output)
    cli.LOG.info("wrote %s, %s, %s", args.output, args.metrics, args.trace)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
