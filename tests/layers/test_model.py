"""The multilayer NMF model: NNLS internals, loss, recovery of planted blocks, determinism, bad settings."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from scfactor.core.nnls import hals_sweep
from scfactor.layers import model as lnmf
from scfactor.layers.cli import FIT, SIMULATE
from scfactor.layers.pipeline import fit
from scfactor.layers.simulate import simulate


def fit_with(x, **settings):
    """Fit with the schema's settings except ``settings`` (by options field name), on the CPU."""
    if "layers" in settings:
        settings["layers"] = tuple(settings["layers"])
    return fit(x, FIT.defaults(**settings), device="cpu")


def test_support_solve_matches_scipy_nnls():
    from scipy.optimize import nnls
    g = torch.Generator().manual_seed(0)
    a = torch.rand(40, 5, generator=g, dtype=torch.float64)
    y = torch.rand(40, 30, generator=g, dtype=torch.float64) - 0.3
    gram, rhs = a.T @ a, a.T @ y
    s0 = hals_sweep(gram, rhs, torch.zeros(5, 30, dtype=torch.float64), 500)
    s = lnmf._solve_on_support(gram, rhs, s0 > 0)
    ref = np.stack([nnls(a.numpy(), y[:, j].numpy())[0] for j in range(30)], axis=1)
    np.testing.assert_allclose(s.numpy(), ref, atol=1e-6)


def test_support_solve_gradient_is_exact():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(12, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(12, 7, generator=g, dtype=torch.float64)
    with torch.no_grad():
        support = hals_sweep(a.T @ a, a.T @ y, torch.zeros(3, 7, dtype=torch.float64), 300) > 0

    def f(a_):
        return lnmf._solve_on_support(a_.T @ a_, a_.T @ y, support)
    assert torch.autograd.gradcheck(f, (a,), eps=1e-6, atol=1e-5)


@pytest.fixture(scope="module")
def small_sim():
    return simulate(SIMULATE.defaults(n_cells=200, n_factors=4, n_genes=300, seed=5))


@pytest.mark.parametrize("solver,lr", [("poisson", 0.1), ("nnls", 0.2)])
def test_loss_decreases(small_sim, solver, lr):
    res = fit_with(small_sim.x, layers=[6, 4], solver=solver, epochs=40, lr=lr, seed=0)
    assert res.loss.shape == (40,) and np.isfinite(res.loss).all()
    assert res.loss[-1] < 0.5 * res.loss[0]
    assert res.loss[-10:].mean() < res.loss[:10].mean()
    assert [t.shape for t in res.thetas] == [(200, 6), (6, 4)]
    assert [b.shape for b in res.betas] == [(300, 6), (300, 4)]
    assert all((t >= 0).all() for t in res.thetas) and all((b >= 0).all() for b in res.betas)


def test_recovers_planted_blocks(small_sim):
    res = fit_with(small_sim.x, layers=[6, 4], solver="poisson", epochs=100, lr=0.1, seed=0)
    m = lnmf.recovery_metrics(res, small_sim.theta, small_sim.beta, small_sim.cell_block)
    assert m["beta_match_corr_l2"] > 0.95, m
    assert m["theta_match_corr_l2"] > 0.9, m
    assert m["ari_l2"] > 0.8 * m["ari_truth"], m
    # a random factorisation does not score like that
    rng = np.random.default_rng(0)
    shuffled = lnmf.matched_correlation(rng.random((300, 4)), small_sim.beta)[0]
    assert shuffled < 0.5


def test_fit_is_deterministic(small_sim):
    a = fit_with(small_sim.x, layers=[5, 3], epochs=15, seed=4)
    b = fit_with(small_sim.x, layers=[5, 3], epochs=15, seed=4)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.thetas[0], b.thetas[0])


def test_bad_model_options():
    x = np.ones((10, 12))
    with pytest.raises(ValueError, match="increase"):
        fit_with(x, layers=[3, 5], epochs=2)
    with pytest.raises(ValueError, match="wider"):
        fit_with(x, layers=[11], epochs=2)
    with pytest.raises(ValueError, match="solver"):
        fit_with(x, solver="lsq", epochs=2)


def test_model_settings_have_no_defaults_of_their_own():
    """The settings of the fit come from the schema only (the model once defaulted to 300 epochs)."""
    params = inspect.signature(lnmf.fit_layered_nmf).parameters
    schema_keys = {o.dest for o in FIT.options} - {"genes", "layer", "device", "label_key", "labels_keep",
                                                   "minibatch_cells", "minibatch_size", "minibatch_epochs",
                                                   "minibatch_cell_iters"}  # the minibatch fit's (test_minibatch)
    assert schema_keys <= set(params)
    assert all(params[k].default is inspect.Parameter.empty for k in schema_keys)
    assert FIT.defaults().epochs == 150


def test_default_solver_does_not_use_hals(monkeypatch, small_sim):
    """The default (poisson) fit never calls the HALS solver, so moving it to core cannot change it."""
    def boom(*a, **k):
        raise AssertionError("HALS called by the poisson solver")
    monkeypatch.setattr(lnmf, "hals_sweep", boom)
    fit_with(small_sim.x, layers=[5, 3], epochs=3, seed=0)
