"""Shared test data of the densify tests: planted low-rank counts, a preprocessed-style .h5ad, a CPU strategy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp


def planted_counts(n_cells=200, n_genes=80, rank=3, seed=0):
    """Poisson counts with a planted rank-``rank`` log-mean and varying library sizes."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 0.6, (n_cells, rank))
    v = rng.normal(0, 0.6, (n_genes, rank))
    lib = rng.lognormal(0, 0.3, n_cells)
    mu = lib[:, None] * np.exp(u @ v.T + rng.normal(0.3, 0.5, n_genes)[None, :])
    return sp.csr_matrix(rng.poisson(mu).astype(np.int32)), mu


def write_preprocessed(path, counts, batch="b1", float_counts=False):
    """A minimal preprocessed-style .h5ad: layers['counts'], obs['batch'], var['liger_selected']."""
    import anndata as ad
    counts = sp.csr_matrix(counts)
    n, m = counts.shape
    a = ad.AnnData(X=counts.astype(np.float32),
                   obs=pd.DataFrame({"batch": pd.Categorical([batch] * n)}, index=[f"c{i}" for i in range(n)]),
                   var=pd.DataFrame({"liger_selected": np.ones(m, bool)}, index=[f"g{j}" for j in range(m)]))
    a.layers["counts"] = counts.astype(np.float32) if float_counts else counts.astype(np.int32)
    a.write_h5ad(path)
    return path


def densify_args(inp, out_dir, *extra, epochs=2):
    """Arguments of the densify step for a small, fast run writing out.h5ad / out.tsv in ``out_dir``."""
    out_dir = Path(out_dir)
    return ["--input", inp, "--batch", "b1", "--genes", "all", "--epochs", epochs, "--block-entries", 512,
            "--embedding-dim", 8, "--layers", 16, 8, "--threads", 1, "--output", out_dir / "out.h5ad",
            "--heldout-table", out_dir / "out.tsv", *extra]


def cpu_strategy():
    """TensorFlow prepared by `scfactor.core.device` (1 thread, seed 0) and its CPU strategy."""
    from scfactor.core.device import configure_tf, tf_strategy
    configure_tf(0, 1)
    return tf_strategy("cpu")
