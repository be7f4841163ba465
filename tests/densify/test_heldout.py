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


@pytest.mark.parametrize("chunk", [7, 1 << 16])
@pytest.mark.parametrize("frac", [0.0, 0.001, 0.3])
def test_unmask_consuming_train_grows_its_arrays_into_the_counts(monkeypatch, chunk, frac):
    """``consume=True`` gives the same counts bit for bit, built in train's own arrays (scipy's view of them kept
    aside), and leaves train all zero; several chunks and row blocks (small ``_ENTRIES_PER_CHUNK``) change nothing."""
    monkeypatch.setattr(heldout, "_ENTRIES_PER_CHUNK", chunk)
    x, _ = planted_counts()
    x = sp.csr_matrix(x, dtype=np.float32)
    train, held = heldout.mask_nonzeros(x, frac, seed=2)
    owners = [id(getattr(train, a).base) for a in ("data", "indices")]
    back = heldout.unmask(train, held, consume=True)
    for a in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(back, a), getattr(x, a))
    assert back.has_canonical_format and back.dtype == np.float32
    assert [id(back.data.base), id(back.indices.base)] == owners  # grown in place, not copied
    assert train.shape == x.shape and train.nnz == 0


def test_unmask_consuming_copies_arrays_held_elsewhere():
    """An array of train that something else refers to is copied, not resized under it."""
    x, _ = planted_counts()
    x = sp.csr_matrix(x, dtype=np.float32)
    train, held = heldout.mask_nonzeros(x, 0.2, seed=2)
    kept, other_view = train.data, train.indices.base.view()  # the values' view; another view of the indices
    before = kept.copy(), other_view.copy()
    back = heldout.unmask(train, held, consume=True)
    np.testing.assert_array_equal(kept, before[0])
    np.testing.assert_array_equal(other_view, before[1])
    for a in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(back, a), getattr(x, a))


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


def test_entries_in_rows_of_sorted_and_unsorted_rows():
    rows = np.array([0, 0, 2, 3, 3, 3, 7])
    for r in (rows, np.random.default_rng(1).permutation(rows)):
        find = heldout.entries_in_rows(r)
        for start, stop in ((0, 1), (1, 3), (3, 8), (4, 7), (8, 9)):
            got = np.arange(r.size)[find(start, stop)]
            np.testing.assert_array_equal(np.sort(got), np.flatnonzero((r >= start) & (r < stop)))
    assert isinstance(heldout.entries_in_rows(rows)(0, 3), slice)


def test_evaluate_scores_every_kth_entry_above_its_cap(monkeypatch):
    """Up to SCORED_MAX held-out entries every one is scored; above it every k-th (n says how many), the same
    entries for every method."""
    x, _ = planted_counts()
    train, held = heldout.mask_nonzeros(x, 0.3, seed=0)
    pred = held.values * np.random.default_rng(0).lognormal(0, 0.3, len(held))
    full = heldout.evaluate({"m": pred}, held)
    assert full["n"].iloc[0] == len(held)
    monkeypatch.setattr(heldout, "SCORED_MAX", 100)
    step = heldout.scored_step(len(held))
    assert step == -(-len(held) // 100) > 1
    capped = heldout.evaluate({"m": pred, "same": pred}, held)
    assert list(capped["n"]) == [len(held.values[::step])] * 2
    want = heldout.heldout_metrics(pred[::step], held.values[::step])
    assert capped["pearson_log1p"].iloc[0] == round(want["pearson_log1p"], 6)
    assert capped.iloc[0, 1:].tolist() == capped.iloc[1, 1:].tolist()


def test_figure_says_when_it_shows_every_kth_entry(monkeypatch):
    from scfactor.densify import plots
    x, _ = planted_counts()
    _, held = heldout.mask_nonzeros(x, 0.3, seed=0)
    monkeypatch.setattr(heldout, "SCORED_MAX", 100)
    trace = {"neumf": {"epoch": [1, 2], "loss": [1.0, 0.5]}}
    fig = plots.heldout_figure(held, {"a": held.values, "b": held.values + 1}, trace, "t")
    step = heldout.scored_step(len(held))
    assert f"every {step}th shown and scored: {len(held.values[::step])}" in fig._suptitle.get_text()


def test_row_range_searches_in_the_rows_own_type():
    rows = np.array([0, 0, 2, 3, 3, 7], dtype=np.int32)
    assert heldout.row_range(rows, 1, 4) == (2, 5) and heldout.row_range(rows, 8, 9) == (6, 6)
    assert heldout.row_range(rows.astype(np.int64), 0, 3) == (0, 3)
