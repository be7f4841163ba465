"""The masked GRN models (scfactor.grn.model): planted networks, scikit-learn reference, prior restriction."""

from __future__ import annotations

import numpy as np
import torch

from grn.data import planted
from scfactor.grn import model as models

torch.set_num_threads(1)   # the shared 2-core machine: more threads only spin against other processes


def test_masked_linear_recovers_planted_signs_and_keeps_zeros():
    x, y, mask, w, true = planted()
    xs, _, _ = models.standardise(x)
    model, fit = models.fit_masked_linear(xs, y, mask, l1=0.02, l2=0.0, tol=1e-9, max_iter=5000)
    west = model.weight().detach().numpy()
    assert fit.converged
    assert np.all(west[~mask] == 0.0)                       # exactly zero, incl. the planted (0, 0) edge
    assert np.mean(np.sign(west[true]) == np.sign(w[true])) >= 0.98
    decoys = mask & ~true
    assert np.abs(west[decoys]).mean() < 0.1 * np.abs(west[true]).mean()
    assert np.allclose(model.bias.detach().numpy(), y.mean(0))      # x centred: bias = target mean
    agree = models.sign_agreement(west, np.sign(w).astype(np.int8) * mask, mask)
    assert agree["agreement"] >= 0.98 and agree["pvalue"] < 1e-6


def test_masked_linear_matches_sklearn_elastic_net():
    from sklearn.linear_model import ElasticNet
    x, y, mask, _, _ = planted(n=200, p=12, t=6, density=0.5, seed=3)
    xs, _, _ = models.standardise(x)
    l1, l2 = 0.05, 0.03
    model, _ = models.fit_masked_linear(xs, y, mask, l1=l1, l2=l2, tol=1e-12, max_iter=20000)
    west = model.weight().detach().numpy()
    for j in range(y.shape[1]):
        f = np.flatnonzero(mask[:, j])
        ref = ElasticNet(alpha=l1 + l2, l1_ratio=l1 / (l1 + l2), tol=1e-13, max_iter=100000).fit(xs[:, f], y[:, j])
        np.testing.assert_allclose(west[f, j], ref.coef_, atol=1e-6)
        assert abs(model.bias[j].item() - ref.intercept_) < 1e-6


def test_masked_mlp_is_restricted_to_prior_tfs():
    x, y, mask, _, _ = planted(n=100, p=10, t=8, seed=4)
    model, _ = models.fit_masked_mlp(x, y, mask, hidden=3, epochs=5, lr=0.01, l2=1e-3, seed=0)
    base = models.predict(model, x)
    for tf in range(mask.shape[0]):
        x2 = x.copy()
        x2[:, tf] += 5.0
        changed = np.abs(models.predict(model, x2) - base).max(axis=0) > 0
        assert not np.any(changed & ~mask[tf])              # targets without this prior TF never move


def test_masked_mlp_fits_nonlinear_target_better_than_linear():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 4))
    y = np.stack([np.abs(x[:, 0]) * 2, x[:, 1] ** 2, np.maximum(x[:, 2], 0) * 3], axis=1) + 0.1 * rng.normal(size=(300, 3))
    mask = np.eye(4, 3, dtype=bool)
    tr, te = slice(0, 200), slice(200, None)
    lin, _ = models.fit_masked_linear(x[tr], y[tr], mask, l1=0.0, l2=0.0, max_iter=2000, tol=1e-6)
    mlp, _ = models.fit_masked_mlp(x[tr], y[tr], mask, hidden=8, epochs=250, lr=0.03, l2=0.0, seed=0)
    r_lin = models.r2_per_target(y[te], models.predict(lin, x[te]))
    r_mlp = models.r2_per_target(y[te], models.predict(mlp, x[te]))
    assert np.all(r_mlp > 0.95) and np.all(r_mlp > r_lin + 0.2), (r_lin, r_mlp)


def test_mlp_deterministic():
    x, y, mask, _, _ = planted(n=80, p=8, t=5, seed=6)
    torch.set_num_threads(1)
    fit = dict(hidden=2, epochs=10, lr=0.01, l2=1e-3, seed=7)
    a = models.predict(models.fit_masked_mlp(x, y, mask, **fit)[0], x)
    b = models.predict(models.fit_masked_mlp(x, y, mask, **fit)[0], x)
    assert np.array_equal(a, b)
