#!/usr/bin/env python
"""NB mixture: CPU time of a fixed number of EM rounds on a real data set, working tree against another commit.

    python benchmarks/nbmix/em_rounds.py --input results/preprocess/kang.h5ad --batch ctrl --k 8 \
        --rounds 20 --code-commit b02cf72

The run's cells as the NB-mixture step loads them (`scfactor.nbmix.pipeline.load_cells`: ``--batch``, ``--genes``,
the ``counts`` layer), one start (the schema's ``init``, seed 0) and exactly ``--rounds`` EM rounds (``tol`` and
``resp_tol`` 0: no early stop; with ``--converge`` the schema's stopping rule), at the schema's other defaults.
Each side runs in its own process with one thread, the sides alternating (`common.alternate_code_sides`),
``--repeats`` times. Reported: CPU and wall seconds of the fit call (median over the repeats, and every run),
CPU seconds per round, the final log-likelihood, the largest difference between the two sides' responsibilities
and the ARI between their partitions. Writes ``<out>.tsv`` and ``<out>.md``, the command on their first line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import add_code_side_options, add_run_cells_options, alternate_code_sides, run_cells, run_ours  # noqa: E402
from results_file import command_line, write_results  # noqa: E402


def child(a) -> int:
    """Run the EM rounds with the package under ``a.code``; save the responsibilities to ``a.result``."""
    sys.path.insert(0, a.code)
    import torch
    torch.set_num_threads(1)
    x = run_cells(a).X
    stop = {} if a.converge else {"tol": 0.0, "resp_tol": 0.0}
    fit, wall, cpu = run_ours(x, a.k, 0, nrep=1, restarts=[], max_iters=a.rounds, **stop)
    np.save(a.result, fit.resp)
    print(json.dumps({"cells": x.shape[0], "genes": x.shape[1], "rounds": fit.n_iter, "cpu_s": cpu, "wall_s": wall,
                      "loglik": fit.loglik}))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_cells_options(ap)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--converge", action="store_true",
                    help="stop by the schema's tol / resp_tol (``--rounds`` is then the largest number of rounds)")
    add_code_side_options(ap, "nbmix_em_rounds")
    a = ap.parse_args(argv)
    if a.child:
        return child(a)
    command = command_line(__file__)
    args = ["--input", a.input, "--genes", a.genes, "--k", str(a.k), "--rounds", str(a.rounds),
            "--code-commit", a.code_commit, *(["--batch", a.batch] if a.batch else []),
            *(["--converge"] if a.converge else [])]
    runs, before, after = alternate_code_sides(__file__, args, a.code_commit, a.repeats, "em_rounds")
    table = pd.DataFrame(runs).groupby("side", sort=False).agg(
        cells=("cells", "first"), genes=("genes", "first"), rounds=("rounds", "first"), cpu_s=("cpu_s", "median"),
        wall_s=("wall_s", "median"), loglik=("loglik", "first"),
        cpu_runs=("cpu_s", lambda v: " ".join(f"{t:.2f}" for t in v))).reset_index()
    table["cpu_s_per_round"] = table["cpu_s"] / table["rounds"]
    rel_ll = abs(table.loglik.iloc[1] - table.loglik.iloc[0]) / abs(table.loglik.iloc[0])
    from sklearn.metrics import adjusted_rand_score
    ari = adjusted_rand_score(before.argmax(1), after.argmax(1))
    intro = (f"# NB mixture: {'EM to convergence (at most ' if a.converge else ''}{a.rounds} EM rounds"
             f"{')' if a.converge else ''}, k={a.k}, {Path(a.input).name}"
             f"{f' (batch {a.batch})' if a.batch else ''}\n\nEach side in its own process, one thread, alternating, "
             f"{a.repeats} repeats (median; every run in `cpu_runs`). CPU time ratio (before / after): "
             f"{table.cpu_s.iloc[0] / table.cpu_s.iloc[1]:.2f}x "
             f"(wall {table.wall_s.iloc[0] / table.wall_s.iloc[1]:.2f}x)."
             f" Final log-likelihoods differ by {rel_ll:.3g} (relative); largest difference of the responsibilities: "
             f"{np.abs(after - before).max():.3g}; ARI between the two sides' partitions {ari:.4f}.")
    write_results(a.out, command, table, intro, floatfmt=".8g")
    print(intro)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
