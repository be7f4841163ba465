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
