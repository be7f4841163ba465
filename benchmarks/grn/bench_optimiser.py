#!/usr/bin/env python
"""GRN optimiser benchmark, CPU time: FISTA (ours) vs the notebook's Adam + L1 recipe on one masked lasso.

The problem is `optimisers.planted_problem` (1000 cells, 100 TFs, 1000 targets, a 3% prior, half of it true).
Every fit runs in its own one-thread process (this script with ``--child``); the parent reads the process's
CPU (user + system, ``wait4``), wall and peak memory, the child reports its fit's own CPU (``process_time``)
and wall, the objective reached, exact zeros in the prior and sign recovery. Sides, run alternately in each
repeat:

* ``fista``: ours at the grn schema's defaults (``tol``, ``max_iter``);
* ``adam``: the notebook's recipe at its own setting, 1000 epochs;
* ``fista_to_adam``: ours stopped at the first iteration whose objective is at most what that repeat's
  Adam reached (time to the same quality; the iteration is found before the timed run);
* ``adam_to_fista`` (first repeat only): Adam until its loss is at most FISTA's objective x (1 + ``--rel``),
  or ``--adam-max-epochs``.

    python benchmarks/grn/bench_optimiser.py --repeats 3

Writes <out>.tsv / <out>.md (medians and ratios; the .md also lists every run) and <out>_runs.tsv, each
headed by the command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(HERE))

from child import run_child, thread_env  # noqa: E402
from results_file import command_line, run_conditions, write_summary_and_runs  # noqa: E402


def child(a) -> None:
    """One timed fit in this process; its measurements as JSON to ``a.json``."""
    import torch
    torch.set_num_threads(1)
    from optimisers import fit_adam, fit_fista, objective, planted_problem, recovery
    prob = planted_problem(a.problem_seed)
    t0, c0 = time.perf_counter(), time.process_time()
    if a.child == "fista":
        w, b, iters = fit_fista(prob, a.l1, tol=a.tol, max_iter=a.max_iter)
    else:
        w, b, iters = fit_adam(prob, a.l1, a.epochs, a.adam_seed, target=a.target)
    fit_cpu, fit_wall = time.process_time() - c0, time.perf_counter() - t0
    Path(a.json).write_text(json.dumps({"fit_cpu_s": fit_cpu, "fit_wall_s": fit_wall, "iterations": iters,
                                        "objective": objective(prob, w, b, a.l1), **recovery(prob, w)}))


def first_iteration_at(prob, l1: float, tol: float, level: float, upper: int) -> int:
    """The smallest FISTA iteration count whose objective is at most ``level`` (bisection; FISTA is
    deterministic, so a fit stopped at ``m`` iterations is the full run's ``m``-th iterate)."""
    from optimisers import fit_fista, objective
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi) // 2
        w, b, _ = fit_fista(prob, l1, tol=tol, max_iter=mid)
        if objective(prob, w, b, l1) <= level:
            hi = mid
        else:
            lo = mid + 1
    return lo


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--l1", type=float, default=0.02)
    ap.add_argument("--problem-seed", type=int, default=0)
    ap.add_argument("--adam-seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=1000, help="the notebook's Adam epochs")
    ap.add_argument("--rel", type=float, default=1e-5, help="adam_to_fista: relative distance to FISTA's objective")
    ap.add_argument("--adam-max-epochs", type=int, default=3000)
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/grn_optimiser_cpu"))
    ap.add_argument("--child", choices=["fista", "adam"], help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    ap.add_argument("--tol", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--max-iter", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--target", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(a)
        return 0
    import pandas as pd
    import torch
    torch.set_num_threads(1)
    from optimisers import planted_problem
    from scfactor.grn.cli import GRN
    command = command_line(__file__)
    opts = GRN.defaults()
    prob = planted_problem(a.problem_seed)
    common = ["--problem-seed", a.problem_seed, "--adam-seed", a.adam_seed, "--l1", a.l1]
    load_before = os.getloadavg()[0]
    rows = []

    def run(side, repeat, *extra):
        with tempfile.TemporaryDirectory() as tmp:
            js = Path(tmp) / "fit.json"
            proc = run_child([sys.executable, __file__, "--json", js, *common, *extra], thread_env(1))
            rows.append({"side": side, "repeat": repeat, **json.loads(js.read_text()),
                         "process_cpu_s": proc["cpu_s"], "process_wall_s": proc["wall_s"],
                         "peak_rss_mb": proc["peak_rss_mb"]})
        print(json.dumps(rows[-1]), flush=True)
        return rows[-1]

    fista_args = ["--child", "fista", "--tol", opts.tol, "--max-iter", opts.max_iter]
    for rep in range(a.repeats):
        fista = run("fista", rep, *fista_args)
        adam = run("adam", rep, "--child", "adam", "--epochs", a.epochs)
        m = first_iteration_at(prob, a.l1, opts.tol, adam["objective"], fista["iterations"])
        run("fista_to_adam", rep, "--child", "fista", "--tol", 0.0, "--max-iter", m)
        if rep == 0:
            run("adam_to_fista", rep, "--child", "adam", "--epochs", a.adam_max_epochs,
                "--target", fista["objective"] * (1 + a.rel))
    runs = pd.DataFrame(rows)
    cols = ["fit_cpu_s", "fit_wall_s", "process_cpu_s", "process_wall_s", "peak_rss_mb", "iterations", "objective",
            "exact_zeros_in_mask", "sign_recovery_true_edges"]
    summary = runs.groupby("side", sort=False)[cols].median().reset_index()
    ref = summary.set_index("side").loc["fista"]
    for what in ("fit_cpu", "fit_wall", "process_cpu", "process_wall"):
        summary[f"{what}_vs_fista"] = summary[f"{what}_s"] / ref[f"{what}_s"]
    mask = prob["mask"]
    intro = (f"Masked lasso, {prob['x'].shape[0]} cells x {mask.shape[0]} TFs -> {mask.shape[1]} targets, "
             f"{int(mask.sum())} prior edges, l1 {a.l1}; FISTA at the grn schema's tol {opts.tol:g} / max_iter "
             f"{opts.max_iter}; Adam lr 0.01 from torch.rand weights (the notebook's recipe). {a.repeats} repeat(s), "
             f"one thread, every fit its own process, sides alternating; medians; `*_vs_fista` = the side's time over "
             f"FISTA's (fit: the fit's own CPU / wall; process: imports, problem set-up and fit). adam_to_fista: "
             f"target FISTA's objective x (1 + {a.rel:g}), at most {a.adam_max_epochs} epochs, first repeat only. "
             + run_conditions(load_before, REPO))
    write_summary_and_runs(a.out, command, summary, runs, intro, floatfmt=".6g")
    print(summary.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
