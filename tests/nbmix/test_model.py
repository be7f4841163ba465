"""NB-mixture clustering (the model-based clustering notebook): model, M step, E step, simulator, metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.optimize as so
import scipy.sparse as sp
import scipy.stats as st
import torch

from scfactor.core import metrics
from scfactor.nbmix import model as nbmix
from scfactor.nbmix.cli import FIT
from scfactor.nbmix.pipeline import em_settings
from scfactor.nbmix.simulate import simulate, simulate_anndata

torch.set_num_threads(1)
S = 1e4  # the notebook's size factor (simulate_nbmix.schema.yaml default)


def em(**over):
    """`fit_em` settings: the schema defaults, one restart, seed 0, then ``over``."""
    kw = em_settings(FIT.defaults(k=1))
    kw.update(nrep=1, seed=0)
    kw.update(over)
    return kw


def test_em_settings_are_the_schema_defaults():
    """The library has no defaults of its own: the step's options (schema defaults: nrep 3) are passed on."""
    assert em_settings(FIT.defaults(k=1)) == dict(
        init="kmeans", restarts=["kmeans++", "subsample"], nrep=3, max_iters=100, tol=1e-4,
        resp_tol=1e-4, screen_rounds=10, screen_margin=1.0, best_tol=1e-2, subsample_fraction=0.2, newton_steps=3, first_newton_steps=10, n_pcs=30,
        leiden_resolution=1.0, restart_subsample_above=20000, restart_subsample_cells=10000, full_max_iters=5,
        full_m_step_cells=100000, dtype=torch.float64)
    assert em_settings(FIT.defaults(k=1, dtype="float32", leiden_resolution=0.5))["dtype"] == torch.float32


@pytest.fixture(scope="module")
def sim():
    x, z, lm, lr = simulate(100, 500, 4, S, seed=1)
    return x, z.argmax(1)


def test_simulator_is_deterministic_and_stores_truth():
    a = simulate_anndata(30, 40, 3, S, 5, "nbmix")
    b = simulate_anndata(30, 40, 3, S, 5, "nbmix")
    assert (a.X != b.X).nnz == 0
    assert a.varm["log_mean_true"].shape == (40, 3)
    assert ((a.varm["log_mean_true"] >= -12) & (a.varm["log_mean_true"] <= -6)).all()
    assert ((a.varm["log_inv_disp_true"] >= 0) & (a.varm["log_inv_disp_true"] <= 4)).all()
    assert (a.obs["label"].astype(str).to_numpy() == np.array([f"c{c}" for c in a.obsm["z_true"].argmax(1)])).all()
    assert (simulate_anndata(30, 40, 3, S, 6, "nbmix").X != a.X).nnz > 0


def test_component_loglik_matches_scipy():
    x, z, _, _ = simulate(20, 30, 2, S, seed=3)
    rng = np.random.default_rng(0)
    lm = rng.uniform(-7, -3, size=(2, 30))
    lr = rng.uniform(-1, 3, size=(2, 30))
    data = nbmix.CountData(sp.csr_matrix(x), chunk_elems=50)  # several chunks
    got = nbmix.component_loglik(data, torch.tensor(lm), torch.tensor(lr)).numpy()
    s = x.sum(1)
    r = np.exp(lr)
    ref = np.stack([st.nbinom(n=r[k], p=r[k] / (r[k] + s[:, None] * np.exp(lm[k]))).logpmf(x).sum(1)
                    for k in range(2)], axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_gradient_and_hessian_match_autograd():
    x, z, _, _ = simulate(40, 25, 2, S, seed=2)
    data = nbmix.CountData(x, chunk_elems=200)
    w = torch.tensor(np.random.default_rng(1).dirichlet([1, 1], size=40))
    a0 = torch.tensor(np.random.default_rng(2).uniform(-8, -4, size=(2, 25)))
    b0 = torch.tensor(np.random.default_rng(3).uniform(-1, 2, size=(2, 25)))
    pairs = nbmix.Pairs(data, w)
    ga, gb, haa, hab, hbb = nbmix._grad_hess(pairs, a0, b0)
    a = a0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    q = nbmix._weighted_objective(pairs, a, b).sum()
    da, db = torch.autograd.grad(q, (a, b), create_graph=True)
    np.testing.assert_allclose(ga.numpy(), da.detach().numpy(), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(gb.numpy(), db.detach().numpy(), rtol=1e-8, atol=1e-8)
    daa = torch.autograd.grad(da.sum(), a, retain_graph=True)[0]
    dab = torch.autograd.grad(da.sum(), b, retain_graph=True)[0]
    dbb = torch.autograd.grad(db.sum(), b)[0]
    np.testing.assert_allclose(haa.numpy(), daa.numpy(), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(hab.numpy(), dab.numpy(), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(hbb.numpy(), dbb.numpy(), rtol=1e-7, atol=1e-8)


def test_m_step_matches_scipy_on_one_gene():
    rng = np.random.default_rng(4)
    n = 300
    s = rng.integers(500, 5000, size=n).astype(float)
    lam = rng.gamma(shape=2.0, scale=np.exp(-6) / 2.0, size=n)
    xg = rng.poisson(s * lam)
    # a second column so that s_i (the row sums) equals the intended size factors
    x = np.column_stack([xg, (s - xg).clip(min=0)]).astype(int)
    s = x.sum(1)
    w = rng.uniform(0.2, 1.0, size=n)
    data = nbmix.CountData(x)
    wt = torch.tensor(w[:, None])
    a, b = nbmix.moment_init(data, wt)
    a, b = nbmix.m_step(data, wt, a, b, steps=50)

    def nll(theta):
        m = s * np.exp(theta[0])
        r = np.exp(theta[1])
        return -(w * st.nbinom(n=r, p=r / (r + m)).logpmf(xg)).sum()

    ref = so.minimize(nll, x0=[np.log(xg.sum() / s.sum()), 0.0], method="Nelder-Mead",
                      options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 20000}).x
    np.testing.assert_allclose([float(a[0, 0]), float(b[0, 0])], ref, atol=1e-4)
    assert nll([float(a[0, 0]), float(b[0, 0])]) <= nll(ref) + 1e-6


def test_mixing_weights_change_e_step():
    x, z, lm, lr = simulate(10, 20, 2, S, seed=0)
    rng = np.random.default_rng(0)
    log_mean = np.log(x.sum(0) / x.sum() + 1e-3)[None, :] + rng.normal(0, 0.05, size=(2, 20))
    log_inv_disp = np.zeros((2, 20))
    r_even, _ = nbmix.predict_proba(x, log_mean, log_inv_disp, [0.5, 0.5])
    r_skew, _ = nbmix.predict_proba(x, log_mean, log_inv_disp, [0.9, 0.1])
    assert not np.allclose(r_even, r_skew)
    shift = np.log(r_skew[:, 0] / r_skew[:, 1]) - np.log(r_even[:, 0] / r_even[:, 1])
    np.testing.assert_allclose(shift, np.log(9.0), rtol=1e-8)


def test_recovers_planted_clusters(sim):
    x, truth = sim
    fit = nbmix.fit_em(x, 4, **em(init="kmeans", seed=0), log_every=0)
    assert metrics.accuracy_hungarian(truth, fit.labels) == 1.0
    assert metrics.ari(truth, fit.labels) == 1.0
    xs, zs, _, _ = simulate(60, 150, 3, S, seed=1)
    fit = nbmix.fit_em(sp.csr_matrix(xs), 3, **em(init="random", nrep=2, seed=0), log_every=0)
    assert metrics.accuracy_hungarian(zs.argmax(1), fit.labels) == 1.0


@pytest.mark.parametrize("init", ["random", "nmf", "leiden"])
def test_loglik_never_decreases(init):
    # sparse-ish data (lower means) so that the nonzero-only terms matter
    x, z, _, _ = simulate(60, 100, 3, s=2e3, seed=7)
    fit = nbmix.fit_em(x, 3, **em(init=init, seed=1, max_iters=12, tol=0), log_every=0)
    tr = np.asarray(fit.trace)
    assert len(tr) >= 5
    assert (np.diff(tr) >= -1e-9 * np.abs(tr[:-1])).all(), np.diff(tr)
    np.testing.assert_allclose(fit.resp.sum(1), 1.0)


def test_restarts_keep_best_loglik():
    x, _, _, _ = simulate(50, 80, 3, S, seed=9)
    fit = nbmix.fit_em(x, 3, **em(init="random", nrep=3, seed=3, max_iters=8), log_every=0)
    assert fit.loglik == max(r["loglik"] for r in fit.restarts)
    assert len(fit.restarts) == 3


def test_amortized_assigns_new_cells():
    x, z, _, _ = simulate(160, 200, 3, S, seed=11)
    truth = z.argmax(1)
    em_kwargs = {k: v for k, v in em(log_every=0).items() if k != "seed"}
    model, fit = nbmix.fit_amortized(x[:120], 3, epochs=8, batch_size=32, lr=1e-2, hidden=128, seed=0,
                                     init_subsample=60, em_kwargs=em_kwargs)
    assert metrics.ari(truth[:120], fit.labels) > 0.95
    new = model.assign(sp.csr_matrix(x[120:])).argmax(1)
    assert metrics.ari(truth[120:], new) > 0.95
    assert len(fit.trace) == 8


def test_metrics():
    truth = np.array(list("aaabbbccc"))
    pred = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])  # b and c merged
    assert metrics.accuracy_majority(truth, pred) == pytest.approx(6 / 9)
    assert metrics.accuracy_hungarian(truth, pred) == pytest.approx(6 / 9)
    pred2 = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2])
    assert metrics.accuracy_majority(truth, pred2) == pytest.approx(8 / 9)
    assert metrics.accuracy_hungarian(truth, pred2) == pytest.approx(8 / 9)
    pred3 = np.array([0, 1, 2, 3, 3, 3, 4, 4, 4])  # over-split: majority is generous, 1-to-1 is not
    assert metrics.accuracy_majority(truth, pred3) == 1.0
    assert metrics.accuracy_hungarian(truth, pred3) == pytest.approx(7 / 9)
    resp = np.eye(3)[[0, 0, 0, 1, 1, 1, 2, 2, 2]] * 0.98 + 0.01 / 1.5
    resp /= resp.sum(1, keepdims=True)
    assert metrics.log_loss(truth, resp) == pytest.approx(-np.log(resp.max(1)).mean())
    r, names = metrics.label_correlation(truth, np.eye(3)[[0, 0, 0, 1, 1, 1, 2, 2, 2]])
    np.testing.assert_allclose(np.diag(r), 1.0)
