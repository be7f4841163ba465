"""Streaming (cell, gene) training batches from a sparse matrix."""

from __future__ import annotations

import numpy as np
import pytest

from densify.data import planted_counts
from scfactor.densify.pairs import PairStream

FULL = dict(zero_keep=1.0, num_neg=4, chunk_entries=1 << 20)


def _collect(stream, epoch):
    parts = list(stream.epoch(epoch))
    return [np.concatenate([p[i] for p in parts]) for i in range(4)]


def test_pointwise_epoch_visits_every_entry_once_in_a_new_order():
    x, _ = planted_counts(50, 30)
    s = PairStream(x, batch_size=256, seed=1, **{**FULL, "chunk_entries": 300})
    c, g, y, w = _collect(s, 0)
    real = w > 0
    assert real.sum() == 50 * 30
    keys = c[real].astype(np.int64) * 30 + g[real]
    assert np.unique(keys).size == 50 * 30
    np.testing.assert_array_equal(y[real], x.toarray()[c[real], g[real]])
    c0, g0, _, _ = _collect(s, 0)
    c1, _, _, _ = _collect(s, 1)
    np.testing.assert_array_equal(c, c0)
    assert not np.array_equal(c, c1)
    assert all(p[0].size == 256 for p in s.epoch(0))


def test_zero_subsampling_weights_are_unbiased():
    x, _ = planted_counts(300, 40)
    s = PairStream(x, batch_size=1024, seed=0, **{**FULL, "zero_keep": 0.2})
    est = []
    for e in range(5):
        c, g, y, w = _collect(s, e)
        n_kept = (w > 0).sum()
        est.append((w * (y == 0)).sum() / n_kept)  # estimates the fraction of zeros in the matrix
        np.testing.assert_allclose((w * y).sum() / n_kept, x.sum() / (300 * 40), rtol=0.05)
    frac_zero = 1 - x.nnz / (300 * 40)
    assert np.mean(est) == pytest.approx(frac_zero, rel=0.05)
    assert s.samples_per_epoch < 0.8 * 300 * 40


def test_implicit_negatives_are_zeros():
    x, _ = planted_counts(60, 200)
    s = PairStream(x, batch_size=512, seed=0, mode="implicit", **{**FULL, "num_neg": 3})
    c, g, y, w = _collect(s, 0)
    real = w > 0
    dense = x.toarray()
    assert (y[real] == 1).sum() == x.nnz
    assert np.all(dense[c[real & (y == 0)], g[real & (y == 0)]] == 0)
    assert np.all(dense[c[real & (y == 1)], g[real & (y == 1)]] > 0)
