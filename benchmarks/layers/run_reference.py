#!/usr/bin/env python
"""Run the reference neuralNMF (sishirsubedi/neuralNMF, not vendored) for a few epochs; print JSON.

Runs in its own venv (``/root/.cache/scfactor/bench-layers``: torch, numpy, scipy, pandas, h5py,
tables) on a checkout of the reference (``--src``: the folder holding ``neuralNMF/``). The package's
``__init__`` pulls plotnine/scanpy-style plotting imports we do not need, so the package object is
created empty and only its model/training modules are imported. The data (``--data``: an .npz with
``x``, cells x genes counts) goes through the reference's own path: int32 tensor, ``nmfNET`` with
``layers = [N] + layers``, ``train_unsupervised(lr, weight_decay=1)`` as in its ``neuralNMF.train``.
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
    p.add_argument("--epochs", type=int, default=3)
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
    torch.manual_seed(args.seed)
    net = nmfNET([x.shape[0]] + args.layers)
    w0, c0 = time.perf_counter(), time.process_time()
    thetalist, betalist = train_unsupervised(net, X, epoch=args.epochs, lr=args.lr, weight_decay=1, decay_epoch=1)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    thetas = [net.nmflist[i].theta.detach().numpy() for i in range(len(args.layers))]
    approx = betalist[-1].detach().numpy()
    for t in reversed(thetas):
        approx = t @ approx
    out = {"epochs": args.epochs, "mode": args.mode, "wall_s": wall, "cpu_s": cpu,
           "mse": float(np.mean((x - approx) ** 2)),
           "thetas_stored": len(thetalist),  # one per layer per epoch: the reference's bug
           "thetas": [t.tolist() for t in thetas],
           "betas": [b.detach().numpy().T.tolist() for b in betalist]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
