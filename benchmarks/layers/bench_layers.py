#!/usr/bin/env python
"""Benchmark the multilayer NMF against the reference neuralNMF on the notebook's simulation (1000 x 2000, K=10).

Each side runs in its own process with one thread (BLAS pools too): scfactor's fits (``run_ours.py``, poisson
and nnls beta solvers), then the reference (``run_reference.py``, at the pinned commit `REF_COMMIT`, in the
venv of ``setup_reference.sh``) epoch by epoch until it converges, reaches ``--ref-max-epochs`` (the
notebook's 300) or spends ``--ref-budget-cpu`` training CPU seconds, then scfactor's fits again (the two
sides alternate). Reported per run: the fit's CPU and wall seconds, the whole process's (start, imports,
data), peak memory, the MSE of ``theta1 theta2 beta2^T`` against the counts and the factor recovery against
the simulation's truth; and the reference's CPU seconds until its MSE first reached each of our fits' MSE
(time to equal loss; its trace is in ``<out>_trace.tsv``).

    python benchmarks/layers/bench_layers.py --ref-modes lsq pmf --ref-max-epochs 300 --ref-budget-cpu 1200

Writes ``<out>.tsv`` / ``.md`` (summary, then every run) and ``<out>_trace.tsv``, headed by this command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from child import run_child, thread_env  # noqa: E402
from results_file import command_line, run_conditions, write_summary_and_runs  # noqa: E402
from scfactor.layers.cli import FIT, SIMULATE  # noqa: E402
from scfactor.layers.model import LayeredNMFResult, recovery_metrics  # noqa: E402
from scfactor.layers.simulate import simulate  # noqa: E402

REF_VENV = Path("/root/.cache/scfactor/bench-layers/bin/python")
REF_SRC = Path("/root/.cache/scfactor/bench-layers-src")
#: sishirsubedi/neuralNMF HEAD when this benchmark was last run (= setup_reference.sh's)
REF_COMMIT = "beb8767ec4249d42e937f5d1b9667c6a7e9a394f"
LAYERS = list(FIT.defaults().layers)
#: our two beta solvers and the learning rate each is run at (poisson: the schema's default)
OURS = (("poisson", FIT.defaults().lr), ("nnls", 0.2))


def reference_commit(src: Path) -> str:
    """The checked-out commit of the reference at ``src`` (exits if it is not `REF_COMMIT`)."""
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    if head != REF_COMMIT:
        raise SystemExit(f"error: {src} is at {head or 'no git commit'}, not the pinned {REF_COMMIT}; "
                         "run benchmarks/layers/setup_reference.sh")
    return head


def timed_child(cmd, threads: int, json_path: Path) -> dict:
    """Run one side's process with ``threads`` threads in every pool; its JSON result plus its process
    wall / CPU seconds and peak memory."""
    proc = run_child(cmd, thread_env(threads))
    out = json.loads(json_path.read_text())
    return {**out, "process_wall_s": proc["wall_s"], "process_cpu_s": proc["cpu_s"],
            "peak_rss_mb": proc["peak_rss_mb"]}


def run_row(side: str, solver: str, rnd: int, out: dict, sim) -> dict:
    """One run's row: timings, MSE, stop reason and recovery metrics against the simulation's truth."""
    res = LayeredNMFResult(thetas=[np.array(t) for t in out["thetas"]], betas=[np.array(b) for b in out["betas"]],
                           loss=np.array([]), layers=LAYERS, solver=solver)
    metrics = recovery_metrics(res, sim.theta, sim.beta, sim.cell_block)
    keep = ("epochs", "fit_cpu_s", "fit_wall_s", "process_cpu_s", "process_wall_s", "peak_rss_mb", "mse")
    return {"side": side, "solver": solver, "run": rnd, **{k: out[k] for k in keep},
            "stop": out.get("stop", "epochs"), **metrics}


def reached(trace: pd.DataFrame, mse: float):
    """The first traced epoch whose MSE is at most ``mse``: (epoch, training CPU s), or (None, None)."""
    hit = trace[trace.mse <= mse]
    return (None, None) if hit.empty else (int(hit.epoch.iloc[0]), float(hit.cpu_s.iloc[0]))


def summarise(runs: pd.DataFrame, traces: dict) -> pd.DataFrame:
    """Per side and solver: mean timings over its runs, MSE and recovery; for our rows, each reference
    mode's epochs and CPU seconds to reach our MSE and the CPU ratio (reference / ours, fit alone)."""
    num = runs.drop(columns=["side", "solver", "stop", "run", "epochs"]).columns
    rows = []
    for (side, solver, epochs), grp in runs.groupby(["side", "solver", "epochs"], sort=False):
        row = {"side": side, "solver": solver, "epochs": epochs, "runs": len(grp), **grp[num].mean().to_dict(),
               "stop": "; ".join(grp.stop.unique())}
        if side == "scfactor":
            for mode, trace in traces.items():
                epoch, cpu = reached(trace, row["mse"])
                row[f"ref_{mode}_epochs_to_mse"] = epoch
                row[f"ref_{mode}_cpu_s_to_mse"] = cpu
                row[f"ref_{mode}_cpu_ratio_to_mse"] = None if cpu is None else cpu / row["fit_cpu_s"]
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, nargs="+", default=[FIT.defaults().epochs, 4 * FIT.defaults().epochs],
                   help="our fits' epochs, one fit per value and solver (default: the schema's, and 4x it to "
                        "compare at the quality both sides converge to)")
    p.add_argument("--ref-modes", nargs="*", default=["lsq"], help="reference beta solvers (its default: lsq)")
    p.add_argument("--ref-max-epochs", type=int, default=300, help="the notebook's run: 300")
    p.add_argument("--ref-budget-cpu", type=float, default=float("inf"),
                   help="stop each reference run after this many training CPU seconds")
    p.add_argument("--ref-tol", type=float, default=1e-4,
                   help="the reference has converged when its MSE changes by less than this over 10 epochs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/layers")
    args = p.parse_args(argv)
    command = command_line(__file__)
    load_before = os.getloadavg()[0]
    if args.ref_modes:
        if not REF_VENV.exists():
            raise SystemExit(f"error: no reference venv {REF_VENV}; run benchmarks/layers/setup_reference.sh")
        reference_commit(REF_SRC)
    sim = simulate(SIMULATE.defaults(n_cells=1000, n_factors=10, n_genes=2000, mode="block", seed=42))
    runs, traces = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        data, result = Path(tmp) / "sim.npz", Path(tmp) / "out.json"
        np.savez(data, x=sim.x)

        def ours(rnd):
            for epochs in args.epochs:
                for solver, lr in OURS:
                    cmd = [sys.executable, Path(__file__).with_name("run_ours.py"), "--data", data, "--json",
                           result, "--solver", solver, "--epochs", epochs, "--lr", lr, "--threads", args.threads,
                           "--layers", *LAYERS]
                    runs.append(run_row("scfactor", solver, rnd, timed_child(cmd, args.threads, result), sim))
                    print(runs[-1], file=sys.stderr, flush=True)

        ours(1)
        for mode in args.ref_modes:
            cmd = [REF_VENV, Path(__file__).with_name("run_reference.py"), "--src", REF_SRC, "--data", data,
                   "--json", result, "--mode", mode, "--max-epochs", args.ref_max_epochs, "--budget-cpu",
                   args.ref_budget_cpu, "--tol", args.ref_tol, "--threads", args.threads, "--layers", *LAYERS]
            out = timed_child(cmd, args.threads, result)
            traces[mode] = pd.DataFrame(out["trace"]).assign(mode=mode)
            runs.append(run_row("neuralNMF", mode, 1, out, sim))
            print(runs[-1], file=sys.stderr, flush=True)
        ours(2)
    runs = pd.DataFrame(runs)
    summary = summarise(runs, traces)
    intro = (f"{run_conditions(load_before)} One thread per side (torch and every BLAS pool); the sides run one "
             f"after the other: scfactor, the reference, scfactor again. Reference: sishirsubedi/neuralNMF at "
             f"{REF_COMMIT}, lr 1, plain gradient steps (its `train_unsupervised`), stop rule: "
             f"{args.ref_max_epochs} epochs, {args.ref_budget_cpu:g} training CPU s or a relative MSE change below "
             f"{args.ref_tol:g} over 10 epochs. Ours: {' and '.join(map(str, args.epochs))} epochs, layers {LAYERS}, "
             + ", ".join(f"{s} lr {lr:g}" for s, lr in OURS) + ". `ari_truth`: the ARI the true theta reaches "
             "(the simulation's ceiling); `mse`: theta1 theta2 beta2^T against the counts. "
             "`ref_<mode>_cpu_s_to_mse`: the reference's training CPU seconds through the first epoch whose "
             "forward pass scored an MSE at most this row's (empty: not reached).")
    write_summary_and_runs(args.out, command, summary, runs, intro)
    if traces:
        with open(f"{args.out}_trace.tsv", "w") as fh:
            fh.write(f"# {command}\n")
            pd.concat(traces.values()).to_csv(fh, sep="\t", index=False, float_format="%.8g")
    print(Path(args.out).with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
