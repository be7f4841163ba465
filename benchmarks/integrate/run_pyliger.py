#!/usr/bin/env python
"""Fit pyliger 0.2.4's ``optimize_ALS`` once on matrices written by prep_kang.py (run in the peer venv).

    run_pyliger.py IN.npz OUT.npz K LAMBDA SEED [--iters N --thresh T] [--init INIT.npz]

Without ``--iters`` / ``--thresh`` pyliger's own defaults apply; ``--init`` gives the starting W, V_i, H_i
(else pyliger draws its own from ``rand_seed``). The fit's wall and CPU seconds and the factors go to OUT.npz.
"""
import argparse
import time
import types

from common import threads

threads(1)

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402

from common import load_scaled, rss, save_factors  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("k", type=int)
    ap.add_argument("lam", type=float)
    ap.add_argument("seed", type=int)
    ap.add_argument("--iters", type=int)
    ap.add_argument("--thresh", type=float)
    ap.add_argument("--init", help="npz with W (k x genes), V0, V1 (k x genes), H0, H1 (cells x k)")
    a = ap.parse_args()
    from pyliger import optimize_ALS
    mats, genes = load_scaled(a.inp)
    adatas = []
    for m in mats:
        x = ad.AnnData(obs=None, var=None, shape=m.shape)
        x.layers["scale_data"] = m
        adatas.append(x)
    lig = types.SimpleNamespace(num_samples=len(adatas), adata_list=adatas, var_genes=list(genes))
    kw = {k: v for k, v in (("max_iters", a.iters), ("thresh", a.thresh)) if v is not None}
    if a.init:
        z = np.load(a.init)
        kw.update(W_init=z["W"], V_init=[z["V0"], z["V1"]], H_init=[z["H0"], z["H1"]])
    before = rss.current_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    optimize_ALS(lig, k=a.k, value_lambda=a.lam, rand_seed=a.seed, **kw)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    w = adatas[0].varm["W"].T
    v = [x.varm["V"].T for x in adatas]
    h = [x.obsm["H"] for x in adatas]
    save_factors(a.out, w, v, h, secs, cpu, before)
    print(f"pyliger optimize_ALS: {cpu:.2f} CPU s")


if __name__ == "__main__":
    main()
