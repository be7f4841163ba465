#!/usr/bin/env python
"""Quality of the minibatch multilayer NMF against the full-batch fit on the block simulation (deterministic numbers).

Simulates ``--n-cells`` x 2000 genes (K=10, schema ``simulate_blocks`` defaults), then fits the full-batch model
(schema ``layers`` defaults: 150 epochs) and the minibatch model (the schema's ``minibatch_*`` settings, or the
``--minibatch-sizes`` / ``--minibatch-epochs`` given) on the same counts, and scores each fit by the final loss
of its factors over the whole matrix (mean Poisson deviance / MSE) and the recovery metrics of the layers step.
No timing is recorded. Writes ``<out>.tsv`` and ``<out>.md``, each starting with this command.

    python benchmarks/layers/bench_minibatch.py --n-cells 10000      # from the repo root, shared venv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from results_file import command_line, write_results  # noqa: E402
from scfactor.layers.cli import FIT, SIMULATE  # noqa: E402
from scfactor.layers.minibatch import fit_layered_nmf_minibatch  # noqa: E402
from scfactor.layers.model import _loss, recovery_metrics  # noqa: E402
from scfactor.layers.pipeline import fit  # noqa: E402
from scfactor.layers.simulate import simulate  # noqa: E402


def final_loss(x: np.ndarray, res) -> float:
    """The model's loss (poisson deviance / MSE) of the final factors over the whole matrix, in float64."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    xhat = torch.as_tensor(res.cell_factors() @ res.betas[-1].T)
    xlogx = float(torch.mean(torch.special.xlogy(xt, xt) - xt)) if res.solver == "poisson" else 0.0
    return float(_loss(xt, xhat, res.solver, xlogx))


def main(argv=None) -> int:
    """Run the comparison; write the tables."""
    d = FIT.defaults()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-cells", type=int, default=10000)
    ap.add_argument("--solver", default=d.solver, choices=("poisson", "nnls"))
    ap.add_argument("--minibatch-sizes", type=int, nargs="+", default=[d.minibatch_size])
    ap.add_argument("--minibatch-epochs", type=int, nargs="+", default=[d.minibatch_epochs])
    ap.add_argument("--no-full-batch", action="store_true",
                    help="skip the full-batch fit (deterministic: its row from an earlier run of the same size stands)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "layers_minibatch"))
    a = ap.parse_args(argv)
    command = command_line(__file__)
    torch.set_num_threads(a.threads)
    sim = simulate(SIMULATE.defaults(n_cells=a.n_cells))
    x = sim.x.astype(np.float32)
    lr = d.lr if a.solver == "poisson" else 0.2
    opts = FIT.defaults(solver=a.solver, lr=lr)
    rows = []

    def add(fit_name, settings, res):
        m = recovery_metrics(res, sim.theta, sim.beta, sim.cell_block)
        rows.append({"fit": fit_name, "settings": settings, "final_loss": final_loss(x, res), **m})
        print(rows[-1], flush=True)

    if not a.no_full_batch:
        add("full batch", f"epochs={opts.epochs}", fit(x, opts, device="cpu"))
    for size in a.minibatch_sizes:
        for epochs in a.minibatch_epochs:
            res = fit_layered_nmf_minibatch(lambda s, e: x[s:e], *x.shape, layers=opts.layers, solver=opts.solver,
                                            epochs=epochs, lr=opts.lr, seed=opts.seed, inner_iters=opts.inner_iters,
                                            batch_size=size, cell_iters=opts.minibatch_cell_iters, device="cpu")
            add("minibatch", f"minibatch_size={size} minibatch_epochs={epochs} "
                             f"minibatch_cell_iters={opts.minibatch_cell_iters}", res)
    write_results(a.out, command, pd.DataFrame(rows),
                  f"{a.n_cells} simulated cells x 2000 genes (block simulation, K=10, seed 42), solver {a.solver}, lr "
                  f"{lr}, seed {opts.seed}; final_loss: the model's loss of the final factors over the whole matrix; "
                  "ari_truth: the ceiling the simulation allows.", floatfmt=".4f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
