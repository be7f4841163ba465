#!/usr/bin/env python
"""Fit scfactor's iNMF once (`scfactor.integrate.model.fit_inmf`) on matrices written by prep_kang.py.

Settings are the integrate schema's defaults, changed only by ``--set`` (JSON, schema names); the fit's wall
and CPU seconds, the factors and the per-iteration objective go to OUT.npz.

    run_ours.py IN.npz OUT.npz --seed 1 --set '{"nrep": 1, "thresh": 0, "solver": "anls"}'
"""
import argparse
import json
import sys
import time
from pathlib import Path

from common import threads

threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

import torch  # noqa: E402

from common import load_scaled, rss, save_factors  # noqa: E402
from scfactor.integrate import model  # noqa: E402
from scfactor.integrate.cli import INTEGRATE  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--set", default="{}", help='integrate settings as JSON (schema names), e.g. {"nrep": 1}')
    a = ap.parse_args()
    torch.set_num_threads(1)
    overrides = {("lambda_" if k == "lambda" else k): v for k, v in json.loads(a.set).items()}
    opts = INTEGRATE.defaults(**overrides)
    mats, _ = load_scaled(a.inp)
    before = rss.current_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    r = model.fit_inmf(mats, k=opts.k, lam=opts.lambda_, max_iters=opts.max_iters, thresh=opts.thresh,
                       nrep=opts.nrep, seed=a.seed, solver=opts.solver, hals_sweeps=opts.hals_sweeps)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    save_factors(a.out, r.W, r.V, r.H, secs, cpu, before, {"trace": r.trace, "iterations": r.iterations})
    print(f"scfactor {opts.solver}: {cpu:.2f} CPU s, objective {r.objective:.6g}")


if __name__ == "__main__":
    main()
