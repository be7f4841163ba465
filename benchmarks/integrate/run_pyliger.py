#!/usr/bin/env python
"""Time pyliger 0.2.4 optimize_ALS on prepared scaled matrices. Usage: run_pyliger.py IN.npz OUT.npz K LAMBDA ITERS SEED"""
import sys
import time
import types

from common import threads

threads(1)

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402

from common import load_scaled, rss_mb, save_factors  # noqa: E402


def main():
    inp, out, k, lam, iters, seed = sys.argv[1:7]
    from pyliger import optimize_ALS
    mats, genes = load_scaled(inp)
    adatas = []
    for m in mats:
        a = ad.AnnData(obs=None, var=None, shape=m.shape)
        a.layers["scale_data"] = m
        adatas.append(a)
    lig = types.SimpleNamespace(num_samples=len(adatas), adata_list=adatas, var_genes=list(genes))
    before = rss_mb()
    t0 = time.perf_counter()
    optimize_ALS(lig, k=int(k), value_lambda=float(lam), max_iters=int(iters), thresh=0.0, nrep=1,
                 rand_seed=int(seed))
    secs = time.perf_counter() - t0
    w = adatas[0].varm["W"].T
    v = [a.varm["V"].T for a in adatas]
    h = [a.obsm["H"] for a in adatas]
    save_factors(out, w, v, h, secs, before)
    print(f"pyliger optimize_ALS: {secs:.2f} s")


if __name__ == "__main__":
    main()
