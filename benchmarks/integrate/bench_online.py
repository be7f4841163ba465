#!/usr/bin/env python
"""Online iNMF at scale: simulate 2 x N cells x G genes (backed .h5ad, chunked), then stream it.

    python benchmarks/integrate/bench_online.py --cells-per-batch 100000 --genes 2000
Writes benchmarks/results/integrate_online.{tsv,md}: simulation and fit wall time, peak RSS of each
process, final objective (every cell's H solved with the final W, V_i, on a last streaming pass).
"""
import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def run(cmd):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    t0 = time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{p.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return time.time() - t0, max(peak, before) / 1024, p.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells-per-batch", type=int, default=100000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--library-size", type=float, default=1000.0)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--lam", type=float, default=5.0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--minibatch", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compare-batch", action="store_true",
                    help="also fit batch iNMF (all cells in memory, 30 HALS iterations) on the same file")
    ap.add_argument("--work", default="/tmp/scfactor-bench-integrate")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/integrate_online"))
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    n = a.cells_per_batch
    sim = work / f"sim_{n}x2_{a.genes}.h5ad"
    sim_secs, sim_peak = float("nan"), float("nan")
    if not sim.exists():
        sim_secs, sim_peak, _ = run([sys.executable, REPO / "workflow/scripts/simulate_batches.py",
                                     "--n-cells", n, n, "--n-genes", a.genes, "--k-shared", 10,
                                     "--k-specific", 2, "--library-size", a.library_size, "--chunk", 5000,
                                     "--seed", 0, "--output", sim])
    rows = []
    for mode in ["online"] + (["batch"] if a.compare_batch else []):
        out = work / f"{mode}_{n}.npz"
        wall, _, log_m = run([sys.executable, HERE / "run_online.py", sim, out, a.k, a.lam, a.epochs,
                              a.minibatch, a.seed, "X", mode])
        if mode == "online":
            log = log_m
        z = np.load(out)
        rows.append({"mode": mode, "cells": int(z["cells"]), "genes": int(z["genes"]), "k": a.k,
                     "epochs_or_iterations": a.epochs if mode == "online" else 30,
                     "minibatch": a.minibatch, "file_mb": sim.stat().st_size / 2**20,
                     "simulate_seconds": sim_secs, "simulate_peak_rss_mb": sim_peak,
                     "fit_seconds": float(z["seconds"]), "scale_pass_seconds": float(z["scale_seconds"]),
                     "fit_peak_rss_mb": float(z["peak_rss_mb"]), "final_objective": float(z["objective"])})
    df = pd.DataFrame(rows)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(f"{a.out}.tsv", sep="\t", index=False, float_format="%.6g")
    with open(f"{a.out}.md", "w") as f:
        f.write("# Online iNMF (Gao et al. 2021) streaming a backed .h5ad\n\n")
        f.write(f"Command: `python benchmarks/integrate/bench_online.py --cells-per-batch {n} --genes {a.genes} "
                f"--epochs {a.epochs}{' --compare-batch' if a.compare_batch else ''}`  \nOne thread, load average at the end "
                f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} shared cores.\n\n")
        f.write(df.set_index("mode").T.to_markdown(floatfmt=".5g") + "\n\n")
        f.write("Fit log (tail):\n\n```\n" + "\n".join(log.strip().splitlines()[-8:]) + "\n```\n")
    print(df.T)


if __name__ == "__main__":
    main()
