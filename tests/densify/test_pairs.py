"""Training tiles of cells x genes (whole-cell blocks when a tile holds every gene), streamed from a sparse matrix."""

from __future__ import annotations

import numpy as np
import pytest

from densify.data import planted_counts
from scfactor.densify.pairs import BlockStream

FULL = dict(zero_keep=1.0, num_neg=4)


def test_pointwise_epoch_visits_every_cell_once_in_a_new_order():
    x, _ = planted_counts(50, 30)
    s = BlockStream(x, cells_per_block=7, seed=1, **FULL)
    blocks = list(s.epoch(0))
    assert len(blocks) == s.steps_per_epoch == 8
    assert {b[0].size for b in blocks} <= {6, 7}  # near-equal blocks, at most 7 cells
    cells = np.concatenate([b[0] for b in blocks])
    np.testing.assert_array_equal(np.sort(cells), np.arange(50))
    dense = x.toarray()
    for c, g, y, w in blocks:
        np.testing.assert_array_equal(g, np.arange(30))
        assert y.shape == w.shape == (c.size, 30)
        np.testing.assert_array_equal(y, dense[c])
        np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-5)  # weights give the block's mean loss
    again = np.concatenate([b[0] for b in s.epoch(0)])
    other = np.concatenate([b[0] for b in s.epoch(1)])
    np.testing.assert_array_equal(cells, again)
    assert not np.array_equal(cells, other)
    assert len(list(s.epoch(0, max_blocks=3))) == 3


def test_tiles_cover_every_entry_once_per_epoch_in_a_new_order():
    x, _ = planted_counts(50, 30)
    s = BlockStream(x, cells_per_block=7, seed=1, genes_per_block=8, **FULL)
    assert (s.cell_blocks, s.gene_blocks, s.steps_per_epoch) == (8, 4, 32)
    dense = x.toarray()
    seen = np.zeros(dense.shape, dtype=int)
    tiles = list(s.epoch(0))
    for c, g, y, w in tiles:
        assert c.size in (6, 7) and g.size in (7, 8) and np.all(np.diff(g) > 0)
        np.testing.assert_array_equal(y, dense[np.ix_(c, g)])
        np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-5)
        seen[np.ix_(c, g)] += 1
    np.testing.assert_array_equal(seen, 1)  # every (cell, gene) entry exactly once
    # consecutive tiles mix cell blocks (not all gene blocks of one cell block in a row)
    firsts = [frozenset(t[0]) for t in tiles[:4]]
    assert len(set(firsts)) > 1
    again = [(t[0].tolist(), t[1].tolist()) for t in s.epoch(0)]
    other = [(t[0].tolist(), t[1].tolist()) for t in s.epoch(1)]
    assert again == [(t[0].tolist(), t[1].tolist()) for t in tiles] and other != again


def test_zero_subsampling_weights_are_unbiased():
    x, _ = planted_counts(300, 40)
    s = BlockStream(x, cells_per_block=50, seed=0, **{**FULL, "zero_keep": 0.2})
    dense = x.toarray()
    est_zero, est_mean = [], []
    for e in range(5):
        for c, _, y, w in s.epoch(e):
            np.testing.assert_allclose(w[y > 0], 1.0 / y.size, rtol=1e-6)  # every nonzero counts once
            est_zero.append((w * (y == 0)).sum() / (dense[c] == 0).mean())
            est_mean.append((w * y).sum() / dense[c].mean())
    assert np.mean(est_zero) == pytest.approx(1.0, rel=0.03)
    assert np.mean(est_mean) == pytest.approx(1.0, rel=1e-5)
    assert np.mean([(w > 0).mean() for *_, w in s.epoch(0)]) < 0.8


def test_implicit_negatives_are_zeros_of_the_same_cell():
    x, _ = planted_counts(60, 200)
    s = BlockStream(x, cells_per_block=16, seed=0, mode="implicit", **{**FULL, "num_neg": 3})
    dense = x.toarray()
    for c, _, y, w in s.epoch(0):
        np.testing.assert_array_equal(y, (dense[c] > 0).astype(np.float32))
        draws = np.round(w * w[y == 1][0] ** -1).astype(int)  # weights in units of one sample
        assert np.all(draws[y == 1] == 1)
        np.testing.assert_array_equal(draws[y == 0].reshape(-1) >= 0, True)
        # each cell: its positives and num_neg draws per positive, all among its own zeros
        np.testing.assert_array_equal((draws * (y == 0)).sum(axis=1), 3 * (dense[c] > 0).sum(axis=1))
