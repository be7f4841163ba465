"""Clustering on a k-NN graph at a size where scanpy switches to approximate neighbours (> 4096 cells)."""

from __future__ import annotations

import numpy as np
import pytest

from scfactor.core.clustering import scanpy_pipeline


@pytest.mark.slow
def test_scanpy_pipeline_at_12000_cells():
    """From 4096 cells on scanpy takes its pynndescent path; with pynndescent 0.7 it returned a csr_array
    that scanpy 1.11.5 cannot read under scipy 1.17 (`getnnz` crash). Two planted populations are found."""
    rng = np.random.default_rng(0)
    n, p = 12_000, 60
    group = rng.integers(0, 2, size=n)
    mean = np.where(group[:, None] == 0, 1.0, 3.0) * rng.uniform(0.5, 1.5, size=(1, p))
    counts = rng.poisson(mean).astype(np.float32)
    out = scanpy_pipeline(counts, n_pcs=10, n_neighbors=15, resolution=0.1, seed=0, umap=False)
    labels = out["leiden"]
    assert labels.shape == (n,) and out["X_pca"].shape == (n, 10)
    # each planted population is (almost) one cluster
    from sklearn.metrics import adjusted_rand_score
    assert adjusted_rand_score(group, labels) > 0.9
