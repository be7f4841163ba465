#!/usr/bin/env python
"""One timed scfactor multilayer NMF fit in its own process (the benchmark's "ours" side); writes JSON.

Reads ``--data`` (an .npz with ``x``, cells x genes counts), fits ``fit_layered_nmf`` with the given solver,
epochs and learning rate, and writes to ``--json``: the fit's own wall and CPU seconds, the MSE of
``theta1 ... thetaL betaL^T`` against the counts, the loss trace and the factors (for the recovery metrics,
computed by the caller). The process's whole CPU time (start, imports) is measured by the caller.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))


def main(argv=None) -> int:
    from scfactor.layers.cli import FIT

    d = FIT.defaults()  # the schema's values
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--json", required=True, help="where to write the result")
    p.add_argument("--solver", choices=["poisson", "nnls"], default=d.solver)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--inner-iters", type=int, default=d.inner_iters)
    p.add_argument("--layers", type=int, nargs="+", default=list(d.layers))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from scfactor.layers.model import fit_layered_nmf

    torch.set_num_threads(args.threads)
    x = np.load(args.data)["x"]
    res = fit_layered_nmf(x, layers=args.layers, solver=args.solver, epochs=args.epochs, lr=args.lr,
                          seed=args.seed, inner_iters=args.inner_iters)
    approx = res.cell_factors() @ res.betas[-1].T
    out = {"fit_wall_s": res.seconds, "fit_cpu_s": res.cpu_seconds, "epochs": args.epochs,
           "mse": float(np.mean((x.astype(np.float64) - approx) ** 2)), "loss": np.asarray(res.loss).tolist(),
           "thetas": [np.asarray(t).tolist() for t in res.thetas],
           "betas": [np.asarray(b).tolist() for b in res.betas]}
    Path(args.json).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
