"""Held-out evaluation: the seeded mask, the metrics, the baselines."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from densify.data import planted_counts
from scfactor.densify import heldout


def test_mask_nonzeros_hides_a_seeded_fraction():
    x, _ = planted_counts()
    train, held = heldout.mask_nonzeros(x, 0.1, seed=3)
    assert len(held) == round(0.1 * x.nnz)
    assert train.nnz == x.nnz - len(held)
    assert np.all(np.asarray(train[held.rows, held.cols]).ravel() == 0)
    np.testing.assert_array_equal(np.asarray(x[held.rows, held.cols]).ravel(), held.values)
    restored = train + sp.csr_matrix((held.values, (held.rows, held.cols)), shape=x.shape)
    assert (restored != x).nnz == 0
    _, again = heldout.mask_nonzeros(x, 0.1, seed=3)
    _, other = heldout.mask_nonzeros(x, 0.1, seed=4)
    np.testing.assert_array_equal(held.rows, again.rows)
    assert not np.array_equal(held.rows, other.rows)


def test_unmask_restores_the_counts_and_messy_input_masks_as_its_canonical_form():
    x, _ = planted_counts()
    x = sp.csr_matrix(x, dtype=np.float32)
    train, held = heldout.mask_nonzeros(x, 0.2, seed=1)
    back = heldout.unmask(train, held)
    assert back.dtype == np.float32 and back.has_sorted_indices
    for a in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(back, a), getattr(x, a))
    # the same matrix with explicit zeros, duplicates split in two and unsorted columns hides the same entries
    coo = x.tocoo()
    half = coo.data / 2
    messy = sp.csr_matrix((np.concatenate([half, coo.data - half, np.zeros(5, np.float32)]),
                           (np.concatenate([coo.row, coo.row, np.arange(5)]),
                            np.concatenate([coo.col, coo.col, np.zeros(5, int)]))), shape=x.shape)
    messy.has_canonical_format = False
    m_train, m_held = heldout.mask_nonzeros(messy, 0.2, seed=1)
    assert (m_train != train).nnz == 0
    np.testing.assert_array_equal(m_held.rows, held.rows)
    np.testing.assert_array_equal(m_held.values, held.values)


def test_svd_baseline_does_not_depend_on_its_chunk_size(monkeypatch):
    x, _ = planted_counts()
    train, held = heldout.mask_nonzeros(x, 0.1, seed=0)
    whole = heldout.svd_baseline(train, held, 3, 0)
    monkeypatch.setattr(heldout, "_ENTRIES_PER_CHUNK", 7)
    np.testing.assert_array_equal(heldout.svd_baseline(train, held, 3, 0), whole)


def test_heldout_metrics_values():
    obs = np.array([1.0, 2.0, 5.0, 10.0])
    m = heldout.heldout_metrics(obs.copy(), obs)
    assert m["pearson_log1p"] == pytest.approx(1.0) and m["spearman_log1p"] == pytest.approx(1.0)
    assert m["rmse"] == 0 and m["median_abs_error"] == 0
    z = heldout.heldout_metrics(np.zeros(4), obs)
    assert np.isnan(z["pearson_log1p"])
    assert z["median_abs_error"] == pytest.approx(3.5)
    assert z["rmse"] == pytest.approx(np.sqrt(np.mean(obs ** 2)))


def test_svd_baseline_recovers_low_rank_better_than_zeros():
    x, _ = planted_counts()
    train, held = heldout.mask_nonzeros(x, 0.1, seed=0)
    t = heldout.evaluate(heldout.baselines(train, held, rank=3, seed=0), held).set_index("method")
    assert t.loc["svd_rank3", "pearson_log1p"] > 0.3
    assert t.loc["svd_rank3", "rmse"] < t.loc["zero", "rmse"]
