"""Shared test data of the GRN tests: a planted network and a tiny preprocessed-like data set with a prior."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


def planted(n=400, p=20, t=40, density=0.25, seed=0):
    """TF matrix, a prior mask, a sparse signed true network inside it (plus one edge outside), targets."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    mask = rng.random((p, t)) < density
    true = mask & (rng.random((p, t)) < 0.5)
    w = np.zeros((p, t))
    w[true] = rng.choice([-1.0, 1.0], true.sum()) * rng.uniform(0.5, 1.5, true.sum())
    mask[0, 0], w[0, 0] = False, 2.0          # a real effect the prior does not allow
    y = x @ w + 3.0 + 0.3 * rng.normal(size=(n, t))
    return x, y, mask, w, true


def write_prior(path, rows):
    """A DoRothEA-format prior (tf, confidence, target, mor) at ``path``."""
    pd.DataFrame(rows, columns=["tf", "confidence", "target", "mor"]).to_csv(path, index=False)
    return path


def write_toy(tmp_path):
    """A preprocessed-like .h5ad with two states and a DoRothEA-format prior over its genes."""
    import anndata as ad
    rng = np.random.default_rng(1)
    tfs = [f"TF{i}" for i in range(6)]
    targets = [f"G{i}" for i in range(30)]
    genes = tfs + targets
    n = 240
    counts = rng.poisson(2.0, size=(n, len(genes))).astype(np.float32)
    x = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    a = ad.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
                   var=pd.DataFrame(index=genes))
    a.obs["label"] = pd.Categorical(np.where(np.arange(n) < n // 2, "stemA", "stemB"))
    a.obs["batch"] = pd.Categorical(["all"] * n)
    a.var["highly_variable"] = True
    h5 = tmp_path / "toy.h5ad"
    a.write_h5ad(h5)
    rows = [(tf, "A", g, 1.0 if (i + j) % 3 else -1.0) for i, tf in enumerate(tfs)
            for j, g in enumerate(targets) if (i * 7 + j) % 4 == 0]
    prior = write_prior(tmp_path / "prior.csv", rows)
    return h5, prior, tmp_path


def outputs(d, stem="o"):
    """The four output paths of the grn step under folder ``d``."""
    return {k: d / f"{stem}.{k}.{ext}" for k, ext in
            (("edges", "tsv"), ("weights", "npz"), ("r2", "tsv"), ("metrics", "tsv"))}


def grn_args(h5, prior, outs, *extra):
    """Command-line arguments of the grn step on the toy data (fast settings)."""
    args = ["--input", h5, "--prior-file", prior, "--source-labels", "stemA", "--target-labels", "stemB",
            "--mlp-epochs", "20", "--n-pcs", "5", "--device", "cpu"]
    for k, v in outs.items():
        args += [f"--{k}", v]
    return [*args, *extra]
