"""QC metrics/filters and gene selection (`scfactor.qc`, `scfactor.genes`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scfactor.preprocess import genes, qc


def test_cell_metrics_and_filter():
    x = sp.csr_matrix(np.array([[5, 0, 5], [0, 0, 0], [1, 1, 8]]))
    m = qc.cell_metrics(x, ["MT-CO1", "ACTB", "GAPDH"])
    assert m["n_counts"].tolist() == [10, 0, 10]
    assert m["n_genes"].tolist() == [2, 0, 3]
    np.testing.assert_allclose(m["pct_mito"], [50.0, 0.0, 10.0])
    assert qc.cell_filter(m).tolist() == [True, False, True]          # no-count cells always dropped
    assert qc.cell_filter(m, max_pct_mito=20).tolist() == [False, False, True]
    assert qc.cell_filter(m, min_genes=3).tolist() == [False, False, True]


def test_qc_summary_per_batch():
    m = pd.DataFrame({"n_counts": [10, 20, 30, 40], "n_genes": [1, 2, 3, 4], "pct_mito": [0, 0, 5, 5]})
    s = qc.qc_summary(m, pd.Series(["a", "a", "b", "b"]), np.array([True, False, True, True]))
    assert s["cells_in"].tolist() == [2, 2] and s["cells_kept"].tolist() == [1, 2]
    assert s["median_counts"].tolist() == [10.0, 35.0]


def test_low_depth_batches_need_enough_kept_cells():
    s = pd.DataFrame({"batch": ["raw", "small", "deep"], "cells_in": [90_000, 50, 5000],
                      "cells_kept": [80_000, 50, qc.LOW_DEPTH_MIN_CELLS], "median_counts": [3.0, 4.0, 19.0]})
    assert qc.low_depth_batches(s, 20)["batch"].tolist() == ["raw", "deep"]  # "small": too few cells to judge
    assert qc.low_depth_batches(s, 19)["batch"].tolist() == ["raw"]
    assert qc.low_depth_batches(s, 0).empty


def test_liger_select_flags_overdispersed_genes():
    rng = np.random.default_rng(0)
    n, p = 400, 60
    lib = rng.integers(500, 3000, size=n)
    base = np.full(p, 1.0 / p)
    rates = np.outer(lib, base)
    x = rng.poisson(rates)
    # genes 0..9 swap between two cell groups (over-dispersed); library composition stays the same
    groups = rng.integers(0, 2, size=n)[:, None]
    x[:, :5] = rng.poisson(rates[:, :5] * np.where(groups == 1, 1.9, 0.1))
    x[:, 5:10] = rng.poisson(rates[:, 5:10] * np.where(groups == 1, 0.1, 1.9))
    sel = genes.liger_select(sp.csr_matrix(x))
    assert sel[:10].all()
    assert sel[10:].mean() < 0.1


def test_liger_union_over_batches():
    rng = np.random.default_rng(1)
    x = rng.poisson(1.0, size=(200, 20))
    x[:100, 0] = rng.poisson(np.where(np.arange(100) % 2, 40.0, 0.01))  # over-dispersed only in batch a
    b = np.array(["a"] * 100 + ["b"] * 100)
    sel_a = genes.liger_select(sp.csr_matrix(x[:100]))
    union = genes.liger_select_union(sp.csr_matrix(x), b)
    assert sel_a[0] and union[0]
    assert (union >= sel_a).all()


def test_sparse_mean_var_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.poisson(0.5, size=(50, 7)).astype(float)
    mean, var = genes.sparse_mean_var(sp.csr_matrix(x))
    np.testing.assert_allclose(mean, x.mean(0))
    np.testing.assert_allclose(var, x.var(0, ddof=1))
    scale = rng.uniform(0.1, 2.0, size=50)                      # rows scaled on the fly, as liger_select does
    mean, var = genes.sparse_mean_var(sp.csr_matrix(x), row_scale=scale)
    np.testing.assert_allclose(mean, (x * scale[:, None]).mean(0))
    np.testing.assert_allclose(var, (x * scale[:, None]).var(0, ddof=1))
    assert np.allclose(genes.sparse_mean_var(x, row_scale=scale)[1], var)


def test_normalise_counts_is_log1p_of_the_scaled_counts_row_by_row():
    """X is log1p of the counts scaled to ``target_sum`` per cell, float32 CSR, and the input is left as it was;
    a block of rows gives the same rows as the whole matrix (the streamed step relies on it)."""
    from scfactor.preprocess.pipeline import normalise_counts
    rng = np.random.default_rng(3)
    counts = sp.csr_matrix(rng.poisson(1.0, size=(40, 9)).astype(np.int32) + np.eye(40, 9, dtype=np.int32))
    before = counts.copy()
    x = normalise_counts(counts, 1e4)
    lib = counts.sum(1).A.ravel()
    np.testing.assert_allclose(x.toarray(), np.log1p(counts.toarray() / lib[:, None] * 1e4), rtol=1e-6)
    assert x.dtype == np.float32 and sp.isspmatrix_csr(x)
    assert (counts != before).nnz == 0
    np.testing.assert_array_equal(normalise_counts(counts[10:25], 1e4).toarray(), x[10:25].toarray())


def test_liger_select_ignores_unexpressed_genes():
    """LIGER drops genes a batch never expresses before selecting: all-zero columns do not tighten the
    Bonferroni threshold, so the selection of the expressed genes is the same with or without them."""
    rng = np.random.default_rng(1)
    n, p = 300, 40
    lib = rng.integers(300, 2000, size=n)
    x = rng.poisson(np.outer(lib, np.full(p, 1.0 / p)))
    groups = rng.integers(0, 2, size=n)[:, None]
    # 10 lowly expressed genes switching between two groups: near the mean-significance bound
    x[:, :10] = rng.poisson(np.outer(lib, np.full(10, 0.02 / p)) * np.where(groups == 1, 1.9, 0.1))
    base = genes.liger_select(sp.csr_matrix(x))
    padded = genes.liger_select(sp.csr_matrix(np.hstack([x, np.zeros((n, 5000), dtype=x.dtype)])))
    assert base[:10].all()
    assert (padded[:p] == base).all() and not padded[p:].any()


def test_liger_union_keeps_only_genes_expressed_in_every_batch():
    rng = np.random.default_rng(4)
    x = rng.poisson(1.0, size=(200, 20))
    x[:100, 0] = rng.poisson(np.where(np.arange(100) % 2, 40.0, 0.01))  # over-dispersed in batch a ...
    x[100:, 0] = 0                                                       # ... and absent from batch b
    b = np.array(["a"] * 100 + ["b"] * 100)
    assert genes.liger_select(sp.csr_matrix(x[:100]))[0]
    assert not genes.liger_select_union(sp.csr_matrix(x), b)[0]
