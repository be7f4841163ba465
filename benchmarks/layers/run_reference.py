#!/usr/bin/env python
"""Run the reference neuralNMF (sishirsubedi/neuralNMF, not vendored) epoch by epoch; write JSON.

Runs in its own venv (made by ``benchmarks/layers/setup_reference.sh``: torch, numpy, scipy) on a git
checkout of the reference (``--src``: the folder holding ``neuralNMF/``). The package's ``__init__`` pulls
plotting and data-loading imports we do not need, so the package object is created empty and only its
model/training modules are imported. The data (``--data``: an .npz with ``x``, cells x genes counts) goes
through the reference's own path: int32 tensor, ``nmfNET`` with ``layers = [N] + layers``, and its
``train_unsupervised(lr, weight_decay=1)`` as in its ``neuralNMF.train``, called for one epoch at a time
(its learning rate is constant with ``weight_decay=1`` and it keeps no other state between epochs, so this
is the same computation as one call with many epochs).

After each epoch the trace gets the MSE that epoch's forward pass scored (the reference's own loss: the
clamped thetas times the betas solved for them) and the CPU seconds of the training calls so far; the
scoring itself is not timed. Stops after ``--max-epochs``, when the training CPU time passes
``--budget-cpu`` seconds, or when the MSE changed by less than ``--tol`` (relative) over the last 10 epochs.
"""

import argparse
import json
import sys
import time
import types

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--json", required=True, help="where to write the result")
    p.add_argument("--max-epochs", type=int, default=300, help="the notebook's run: 300")
    p.add_argument("--budget-cpu", type=float, default=float("inf"), help="stop after this many training CPU s")
    p.add_argument("--tol", type=float, default=1e-4, help="relative MSE change over 10 epochs that stops it")
    p.add_argument("--layers", type=int, nargs="+", default=[20, 10])
    p.add_argument("--mode", choices=["lsq", "pmf"], default="lsq", help="reference beta solver")
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    pkg = types.ModuleType("neuralNMF")
    pkg.__path__ = [f"{args.src}/neuralNMF"]
    sys.modules["neuralNMF"] = pkg
    import neuralNMF.model.nmf as ref_nmf
    from neuralNMF.model.net import nmfNET
    from neuralNMF.neuralNMF import train_unsupervised

    ref_nmf.calculate_beta.__defaults__ = (args.mode,)
    x = np.load(args.data)["x"]
    X = torch.tensor(x.astype(np.int32), dtype=torch.int32)
    xf = x.astype(np.float64)
    torch.manual_seed(args.seed)
    net = nmfNET([x.shape[0]] + args.layers)
    trace, cpu, wall, stop = [], 0.0, 0.0, "max_epochs"
    thetas = betas = None
    for epoch in range(1, args.max_epochs + 1):
        # what this epoch's forward pass will use: the thetas clamped at zero (nmfl.forward)
        thetas = [net.nmflist[i].theta.detach().clamp(min=0).numpy().copy() for i in range(len(args.layers))]
        w0, c0 = time.perf_counter(), time.process_time()
        _, betas = train_unsupervised(net, X, epoch=1, lr=args.lr, weight_decay=1, decay_epoch=1)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        approx = betas[-1].detach().numpy()
        for t in reversed(thetas):
            approx = t @ approx
        mse = float(np.mean((xf - approx) ** 2))
        trace.append({"epoch": epoch, "cpu_s": cpu, "wall_s": wall, "mse": mse})
        print(f"epoch {epoch}: mse {mse:.4f}, {cpu:.1f} CPU s", file=sys.stderr, flush=True)
        if not np.isfinite(mse):
            stop = "non-finite MSE"
            break
        if epoch > 10 and abs(trace[-11]["mse"] - mse) <= args.tol * abs(trace[-11]["mse"]):
            stop = f"converged (MSE changed < {args.tol:g} relative over 10 epochs)"
            break
        if cpu >= args.budget_cpu:
            stop = f"CPU budget {args.budget_cpu:g} s"
            break
    out = {"mode": args.mode, "epochs": len(trace), "stop": stop, "fit_wall_s": wall, "fit_cpu_s": cpu,
           "mse": trace[-1]["mse"], "trace": trace,
           "thetas": [t.tolist() for t in thetas],
           "betas": [b.detach().numpy().T.tolist() for b in betas]}
    with open(args.json, "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
