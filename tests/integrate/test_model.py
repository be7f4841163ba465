"""The iNMF model: NNLS solvers, batch and online iNMF, quantile normalisation and the metrics it is scored by."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment, nnls

from scfactor.core import metrics
from scfactor.core.errors import InputError
from scfactor.core.nnls import hals_sweep, nnls_bpp
from scfactor.integrate import model
from scfactor.integrate.pipeline import BackedSource
from scfactor.integrate.quantile_norm import quantile_normalize, refine_clusters

from .conftest import DEFAULTS, SIM


def fit(xs, **settings):
    """`model.fit_inmf` with the schema defaults, overridden by ``settings``."""
    kw = dict(k=DEFAULTS.k, lam=DEFAULTS.lambda_, max_iters=DEFAULTS.max_iters, thresh=DEFAULTS.thresh,
              nrep=DEFAULTS.nrep, seed=DEFAULTS.seed, solver=DEFAULTS.solver, hals_sweeps=DEFAULTS.hals_sweeps)
    kw.update(settings)
    return model.fit_inmf(xs, **kw)


@pytest.fixture(scope="module")
def sim_scaled(sim):
    a = ad.read_h5ad(sim)
    b = a.obs["batch"].astype(str).to_numpy()
    return a, b, [model.liger_scale(a.X[b == name]) for name in ("b1", "b2")]


# ------------------------------------------------------------------ solvers
def test_bpp_matches_scipy_nnls_and_warm_start():
    rng = np.random.default_rng(0)
    a = rng.random((60, 8))
    bmat = rng.normal(size=(60, 40)) + a @ rng.random((8, 40))
    ata, atb = torch.tensor(a.T @ a), torch.tensor(a.T @ bmat)
    x = nnls_bpp(ata, atb).numpy()
    ref = np.stack([nnls(a, bmat[:, j])[0] for j in range(bmat.shape[1])], 1)
    assert np.abs(x - ref).max() < 1e-9
    assert (x == 0).any()  # the constraints are active somewhere, else the test is vacuous
    warm = nnls_bpp(ata, atb, passive=torch.rand(8, 40, generator=torch.Generator().manual_seed(1)) > 0.5)
    assert np.abs(warm.numpy() - ref).max() < 1e-9


def test_hals_sweeps_converge_to_nnls_and_are_monotone():
    rng = np.random.default_rng(1)
    a = rng.random((50, 6))
    bmat = a @ rng.random((6, 30)) + 0.1 * rng.normal(size=(50, 30))
    ata, atb = torch.tensor(a.T @ a), torch.tensor(a.T @ bmat)
    x = torch.ones(6, 30, dtype=torch.float64)
    obj = []
    for _ in range(200):
        hals_sweep(ata, atb, x, 1)
        obj.append(float(((torch.tensor(a) @ x - torch.tensor(bmat)) ** 2).sum()))
    assert all(b <= a_ + 1e-9 for a_, b in zip(obj, obj[1:]))
    ref = np.stack([nnls(a, bmat[:, j])[0] for j in range(30)], 1)
    assert np.abs(x.numpy() - ref).max() < 1e-4


# ------------------------------------------------------------------ iNMF
@pytest.mark.parametrize("solver", ["anls", "hals"])
def test_objective_decreases_monotonically(sim_scaled, solver):
    _, _, xs = sim_scaled
    r = fit(xs, k=6, lam=5.0, max_iters=15, thresh=0, solver=solver, seed=2)
    tr = np.asarray(r.trace)
    assert len(tr) == 16
    assert np.all(np.diff(tr) <= 1e-9 * tr[1:]), tr
    assert tr[-1] < 0.5 * tr[1]  # it actually optimises
    # the objective tracked from sufficient statistics equals the directly computed one
    assert r.objective == pytest.approx(model.inmf_objective(xs, r.W, r.V, r.H, 5.0), rel=1e-8)
    assert min(r.W.min(), min(v.min() for v in r.V), min(h.min() for h in r.H)) >= 0


def test_restarts_keep_best_and_are_deterministic(sim_scaled):
    _, _, xs = sim_scaled
    r1 = fit(xs, k=5, max_iters=5, nrep=3, seed=7)
    r2 = fit(xs, k=5, max_iters=5, nrep=3, seed=7)
    assert r1.objective == min(r1.rep_objectives)
    assert r1.seed == 7 + r1.rep
    np.testing.assert_array_equal(r1.W, r2.W)


def test_default_stop_is_rligers_iteration_count(sim_scaled):
    """The defaults stop every restart at rliger's 30 iterations (thresh 1e-6 is not reached first), where
    a looser tolerance with a higher cap stops at a different point (docs/integrate.md, the trade-off)."""
    _, _, xs = sim_scaled
    r = fit(xs, nrep=1)
    assert (DEFAULTS.max_iters, DEFAULTS.thresh) == (30, 1e-6)
    assert r.iterations == DEFAULTS.max_iters and len(r.trace) == DEFAULTS.max_iters + 1
    assert abs(r.trace[-2] - r.trace[-1]) / r.trace[-1] >= DEFAULTS.thresh
    loose = fit(xs, nrep=1, max_iters=100, thresh=1e-5)
    assert loose.iterations != DEFAULTS.max_iters


def test_recovers_planted_shared_factors(sim, sim_scaled):
    a, _, xs = sim_scaled
    r = fit(xs, k=SIM.k_shared + 2, lam=5.0, max_iters=30, seed=1)
    w_true = a.varm["W_true"].T
    c = np.corrcoef(np.vstack([w_true, r.W]))[:SIM.k_shared, SIM.k_shared:]
    rows, cols = linear_sum_assignment(-c)
    matched = c[rows, cols]
    assert matched.min() > 0.6 and matched.mean() > 0.7, matched
    # a random non-negative W does not match: the test can fail
    rnd = np.random.default_rng(0).uniform(0, 2, r.W.shape)
    c0 = np.corrcoef(np.vstack([w_true, rnd]))[:SIM.k_shared, SIM.k_shared:]
    assert c0[linear_sum_assignment(-c0)].mean() < 0.3


def test_quantile_normalisation_raises_alignment(sim_scaled):
    _, b, xs = sim_scaled
    r = fit(xs, k=6, max_iters=20, seed=1)
    h_norm, clusters, ref = quantile_normalize(r.H, None, quantiles=DEFAULTS.quantiles, min_cells=20,
                                               knn_k=20)
    assert ref == 0  # largest batch
    np.testing.assert_array_equal(h_norm[0], r.H[0])  # the reference is unchanged
    before = metrics.alignment_score(np.vstack(r.H), b)
    after = metrics.alignment_score(np.vstack(h_norm), b)
    assert after > before + 0.2, (before, after)


def test_refine_clusters_majority_vote():
    h = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    c = np.array([0, 1, 0, 1, 1, 0])
    np.testing.assert_array_equal(refine_clusters(h, c, 3), [0, 0, 0, 1, 1, 1])


def test_alignment_score_extremes():
    rng = np.random.default_rng(0)
    mixed = rng.normal(size=(400, 3))
    batch = np.repeat(["a", "b"], 200)
    sep = mixed + np.where(batch == "a", 0, 100)[:, None]
    assert metrics.alignment_score(mixed, batch) > 0.85
    assert metrics.alignment_score(sep, batch) == pytest.approx(0.0)
    ari, nmi, n = metrics.ari_nmi(np.array(["x", "y", None, "x"], dtype=object), np.array([1, 2, 2, 1]))
    assert (ari, nmi, n) == (1.0, 1.0, 3)


def test_online_inmf_close_to_batch(sim):
    src = BackedSource(sim, (), "X", "all", "label")
    src.fit_scale(100)
    n_genes = len(src.genes)
    res = model.fit_online_inmf(lambda e: src.stream(64, 10 + e), src.n_cells, n_genes, k=6, lam=5.0, epochs=6,
                                seed=1)
    xs = [sp.vstack([src.read(i, 0, n)]).tocsr() for i, n in enumerate(src.n_cells)]
    src.close()
    assert [h.shape for h in res.H] == [(300, 6), (200, 6)]
    direct = model.inmf_objective(xs, res.W, res.V, res.H, 5.0)
    assert res.objective == pytest.approx(direct, rel=1e-8)
    batch = fit(xs, k=6, max_iters=30, seed=1)
    assert res.objective < 1.15 * batch.objective, (res.objective, batch.objective)


def test_factor_count_check_names_the_smallest_batch_and_the_fix():
    model.check_factor_count(7, 100, {"A": 400, "B": 8}, "x.h5ad")
    with pytest.raises(InputError, match=r"smallest batch \('B': 8 cells\): lower integrate.k, or leave that batch"):
        model.check_factor_count(8, 100, {"A": 400, "B": 8}, "x.h5ad")
    with pytest.raises(InputError, match=r"not smaller than the number of genes \(100\)"):
        model.check_factor_count(100, 100, {"A": 400, "B": 400}, "x.h5ad")
