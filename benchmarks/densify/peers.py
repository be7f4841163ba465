#!/usr/bin/env python
"""Run MAGIC and scVI on a training count matrix and return their predictions at hidden entries.

Runs in the benchmark's own environment (/root/.cache/scfactor/bench-densify: magic-impute,
scvi-tools, torch CPU), not the project's. Input: an .npz with the CSR training matrix (hidden
entries already zero) and the hidden (row, col) indices; output: an .npz with one prediction
vector per method on the counts scale, plus a JSON line per method on stdout (seconds, version,
or the error that stopped it).

* MAGIC (magic-impute): library-size normalise to the median library, sqrt, MAGIC (default knn=5,
  t='auto', seeded), square, and scale back to each cell's library size.
* scVI (scvi-tools): SCVI on the raw training counts (default 10 latent dims, 1 hidden layer of
  128), ``max_epochs`` epochs or ``--scvi-minutes`` of training (Lightning ``max_time``),
  whichever comes first (the epochs actually trained are reported), then ``get_normalized_expression(library_size='latent',
  n_samples=25, return_mean=True)``: expected counts with the cell's library size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

import numpy as np
import scipy.sparse as sp


def run_magic(x, rows, cols, seed, threads):
    import magic
    lib = np.asarray(x.sum(axis=1)).ravel()
    scale = np.median(lib)
    norm = sp.diags(scale / lib) @ x
    norm.data = np.sqrt(norm.data)
    op = magic.MAGIC(random_state=seed, n_jobs=threads, verbose=0)
    out = np.asarray(op.fit_transform(norm.toarray(), genes="all_genes"))
    out = np.clip(out, 0, None) ** 2
    return (out * (lib / scale)[:, None])[rows, cols], {"version": magic.__version__}


def run_scvi(x, rows, cols, seed, threads, max_epochs, max_minutes):
    import anndata as ad
    import scvi
    import torch
    torch.set_num_threads(threads)
    scvi.settings.seed = seed
    scvi.settings.num_threads = threads
    a = ad.AnnData(X=sp.csr_matrix(x, dtype=np.float32))
    scvi.model.SCVI.setup_anndata(a)
    model = scvi.model.SCVI(a)
    t0 = time.perf_counter()
    model.train(max_epochs=max_epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                max_time={"minutes": max_minutes})
    train_s = time.perf_counter() - t0
    epochs = len(model.history["elbo_train"])
    mu = model.get_normalized_expression(library_size="latent", n_samples=25, return_mean=True)
    mu = np.asarray(mu)
    return mu[rows, cols], {"version": scvi.__version__, "max_epochs": max_epochs, "epochs_trained": epochs,
                            "train_seconds": train_s, "max_minutes": max_minutes}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help=".npz with data/indices/indptr/shape and rows/cols")
    p.add_argument("--output", required=True, help=".npz of predictions per method")
    p.add_argument("--methods", nargs="+", default=["magic", "scvi"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scvi-epochs", type=int, default=400)
    p.add_argument("--scvi-minutes", type=float, default=10.0, help="wall-clock cap of scVI training")
    args = p.parse_args(argv)
    z = np.load(args.input)
    x = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"])).astype(np.float64)
    rows, cols = z["rows"], z["cols"]
    preds = {}
    for m in args.methods:
        t0 = time.perf_counter()
        try:
            if m == "magic":
                pred, info = run_magic(x, rows, cols, args.seed, args.threads)
            elif m == "scvi":
                pred, info = run_scvi(x, rows, cols, args.seed, args.threads, args.scvi_epochs,
                                      args.scvi_minutes)
            else:
                raise ValueError(f"unknown method {m}")
            preds[m] = np.asarray(pred, dtype=np.float64)
            info.update(method=m, seconds=time.perf_counter() - t0, ok=True)
        except Exception as exc:  # recorded in the results, never faked
            info = {"method": m, "ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                    "traceback_tail": traceback.format_exc().splitlines()[-3:]}
        print(json.dumps(info), flush=True)
    np.savez(args.output, **preds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
