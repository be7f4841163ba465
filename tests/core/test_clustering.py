"""Clustering on a k-NN graph at a size where scanpy switches to approximate neighbours (> 4096 cells)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from scfactor.core.clustering import float_values, normalise_log1p, scanpy_pipeline


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


def _planted(n, p, seed):
    """``n`` cells in two planted groups (labels 0 / 1) with ``p`` well-separated dimensions."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, size=n)
    return rng.normal(size=(n, p)) + 4.0 * group[:, None], group


def test_leiden_on_scores_at_12000_cells():
    """The NB mixture's ``leiden`` start (exact k-NN graph + igraph Leiden) finds two planted groups."""
    from sklearn.metrics import adjusted_rand_score

    from scfactor.core.clustering import leiden_on_scores
    x, group = _planted(12_000, 10, 1)
    labels = leiden_on_scores(x, n_neighbors=15, resolution=0.1, seed=0)
    assert labels.shape == (12_000,) and adjusted_rand_score(group, labels) > 0.95


def test_alignment_and_agreement_at_12000_cells():
    """LIGER's alignment and agreement (core.metrics, exact k-NN) at 12,000 cells: batches drawn from one
    distribution score near 1 (mixed), batches shifted apart 0; an embedding agrees with itself fully and
    with an unrelated one about as much as chance (k / cells)."""
    from scfactor.core.metrics import agreement, alignment_score
    rng = np.random.default_rng(2)
    n = 12_000
    batch = np.where(rng.random(n) < 0.6, "b1", "b2")
    emb = rng.normal(size=(n, 4))
    mixed = alignment_score(emb, batch, seed=0)
    apart = alignment_score(emb + 10.0 * (batch == "b2")[:, None], batch, seed=0)
    assert 0.9 < mixed < 1.1 and apart == 0.0
    parts = [emb[batch == b] for b in ("b1", "b2")]
    assert agreement(parts, parts, k=15) == 1.0
    unrelated = agreement(parts, [rng.normal(size=p.shape) for p in parts], k=15)
    assert unrelated < 20 * 15 / min(len(p) for p in parts)


def test_umap_on_a_subsample_above_umap_max_cells():
    """Above ``umap_max_cells`` the UMAP covers a seeded random subsample of that many cells (NaN elsewhere,
    the same on rerun); Leiden and PCA still cover every cell; at or below it every cell has coordinates."""
    rng = np.random.default_rng(3)
    group = rng.integers(0, 2, size=400)
    counts = rng.poisson(np.where(group[:, None] == 0, 1.0, 4.0) * np.ones((1, 30))).astype(np.float32)
    out = scanpy_pipeline(counts, n_pcs=5, n_neighbors=10, resolution=0.2, seed=0, umap_max_cells=150)
    shown = np.isfinite(out["X_umap"]).all(1)
    assert shown.sum() == 150 and np.array_equal(np.flatnonzero(shown), out["umap_sample"])
    assert out["leiden"].shape == (400,) and out["X_pca"].shape == (400, 5)
    again = scanpy_pipeline(counts, n_pcs=5, n_neighbors=10, resolution=0.2, seed=0, umap_max_cells=150)
    assert np.array_equal(out["X_umap"], again["X_umap"], equal_nan=True)
    whole = scanpy_pipeline(counts, n_pcs=5, n_neighbors=10, resolution=0.2, seed=0, umap_max_cells=400)
    assert np.isfinite(whole["X_umap"]).all() and whole["umap_sample"] is None
    assert np.array_equal(whole["leiden"], out["leiden"])


def test_scanpy_pipeline_leaves_the_counts_unchanged():
    """The log-normalised matrix shares the index arrays of canonical CSR counts (`float_values`): the counts come
    back unchanged, an explicitly stored zero included, and the results are those of a full copy (dense input).
    Counts that are not canonical (a duplicate entry) are copied whole, float32 ones too."""
    rng = np.random.default_rng(4)
    group = rng.integers(0, 2, size=300)
    dense = rng.poisson(np.where(group[:, None] == 0, 1.0, 4.0) * np.ones((1, 30))).astype(np.int32)
    counts = sp.csr_matrix(dense)
    assert np.shares_memory(float_values(counts).indices, counts.indices)
    before = [v.copy() for v in (counts.data, counts.indices, counts.indptr)]
    out = scanpy_pipeline(counts, n_pcs=5, n_neighbors=10, resolution=0.2, seed=0, umap=False)
    assert all(np.array_equal(b, v) for b, v in zip(before, (counts.data, counts.indices, counts.indptr)))
    copied = scanpy_pipeline(dense, n_pcs=5, n_neighbors=10, resolution=0.2, seed=0, umap=False)
    assert np.array_equal(out["leiden"], copied["leiden"]) and np.array_equal(out["X_pca"], copied["X_pca"])
    stored_zero = counts.copy()
    stored_zero.data[0] = 0  # still canonical, one explicit zero
    kept = stored_zero.data.copy()
    scanpy_pipeline(stored_zero, n_pcs=5, n_neighbors=10, resolution=0.2, seed=0, umap=False)
    assert np.array_equal(stored_zero.data, kept) and stored_zero.nnz == counts.nnz
    duplicated = sp.csr_matrix((np.ones(2, np.float32), np.array([1, 1]), np.array([0, 2, 2])), shape=(2, 3))
    copy = float_values(duplicated)
    assert not np.shares_memory(copy.indices, duplicated.indices) and not np.shares_memory(copy.data, duplicated.data)
    floats = counts.astype(np.float32)
    scanpy_pipeline(floats, n_pcs=5, n_neighbors=10, resolution=0.2, seed=0, umap=False)
    assert np.array_equal(floats.toarray(), dense)  # float32 counts are not normalised in place either


@pytest.mark.parametrize("block_entries", [1, 7, 100, 1 << 22])
def test_normalise_log1p_equals_scanpy_bit_for_bit(block_entries):
    """The blockwise in-place normalisation + log1p gives scanpy's ``normalize_total`` + ``log1p`` values exactly on
    counts (an empty row, one huge count; blocks of any size, a row longer than a block), in place; values that are
    not whole numbers agree to float32 rounding (their row sums may differ in the last bit)."""
    import anndata as ad
    import scanpy as sc
    rng = np.random.default_rng(0)
    dense = rng.poisson(rng.gamma(0.5, 2, size=(300, 1)) * rng.gamma(0.5, 1, size=(1, 60))).astype(np.int32)
    dense[3] = 0
    dense[10, 5] = 10 ** 6
    counts = sp.csr_matrix(dense)
    x = float_values(counts)
    values = x.data
    normalise_log1p(x, 1e4, block_entries)
    assert x.data is values  # in place
    ref = ad.AnnData(X=float_values(counts))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scanpy: "Some cells have zero counts"
        sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    np.testing.assert_array_equal(x.data, ref.X.data)
    np.testing.assert_array_equal(counts.toarray(), dense)  # the counts themselves untouched
    values = float_values(counts)  # values that are not whole numbers: scanpy's up to float32 rounding
    values.data *= rng.random(values.nnz, dtype=np.float32)
    ref = ad.AnnData(X=values.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    normalise_log1p(values, 1e4, block_entries)
    np.testing.assert_allclose(values.data, ref.X.data, rtol=3e-7, atol=0)
