#!/usr/bin/env python
"""Time scfactor's fit_inmf on prepared scaled matrices.
Usage: run_ours.py IN.npz OUT.npz K LAMBDA ITERS SEED SOLVER SWEEPS [THREADS] [DEVICE]"""
import sys
import time
from pathlib import Path

from common import threads

threads(int(sys.argv[9]) if len(sys.argv) > 9 else 1)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

import torch  # noqa: E402

from common import load_scaled, rss_mb, save_factors  # noqa: E402
from scfactor.integrate import model  # noqa: E402


def main():
    inp, out, k, lam, iters, seed, solver, sweeps = sys.argv[1:9]
    torch.set_num_threads(int(sys.argv[9]) if len(sys.argv) > 9 else 1)
    device = sys.argv[10] if len(sys.argv) > 10 else "cpu"
    mats, _ = load_scaled(inp)
    before = rss_mb()
    t0 = time.perf_counter()
    r = model.fit_inmf(mats, k=int(k), lam=float(lam), max_iters=int(iters), thresh=0.0, nrep=1, seed=int(seed),
                       solver=solver, hals_sweeps=int(sweeps), device=device)
    secs = time.perf_counter() - t0
    save_factors(out, r.W, r.V, r.H, secs, before, {"trace": r.trace})
    print(f"scfactor {solver}/{sweeps}: {secs:.2f} s, objective {r.objective:.6g}")


if __name__ == "__main__":
    main()
