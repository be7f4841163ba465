"""The lasso baseline's LassoCV on Gram sums agrees with sklearn's LassoCV (alpha, coefficients, predictions)."""

import numpy as np
import pytest
from sklearn.linear_model import LassoCV
from sklearn.model_selection import KFold

from scfactor.mtl.lasso_cv import kfold_bounds, lasso_cv


@pytest.mark.parametrize("n,k", [(10, 5), (11, 5), (103, 3), (7, 2)])
def test_kfold_bounds_are_sklearns_folds(n, k):
    ours = [np.arange(a, b) for a, b in kfold_bounds(n, k)]
    theirs = [test for _, test in KFold(k).split(np.zeros((n, 1)))]
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        np.testing.assert_array_equal(o, t)


def _design(n, p, seed, correlated=True):
    """Standardised correlated features and a sparse linear target with noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    if correlated:
        x = x @ (np.eye(p) + 0.5 * rng.normal(size=(p, p)) / np.sqrt(p))
    x = (x - x.mean(0)) / x.std(0)
    w = np.zeros(p)
    w[rng.choice(p, size=max(1, p // 5), replace=False)] = rng.normal(size=max(1, p // 5))
    return x, x @ w + 0.7 * rng.normal(size=n) + 3.0


@pytest.mark.parametrize("n,p,cv,n_alphas,seed", [(400, 30, 5, 20, 0), (257, 40, 3, 10, 1), (90, 60, 5, 20, 2),
                                                    (500, 20, 2, 5, 3)])
def test_lasso_cv_matches_sklearn(n, p, cv, n_alphas, seed):
    x, y = _design(n, p, seed)
    ref = LassoCV(alphas=n_alphas, cv=cv, max_iter=2000).fit(x, y)
    alpha, coef, intercept = lasso_cv(x, y, cv, n_alphas, 2000)
    assert alpha == pytest.approx(ref.alpha_, rel=1e-12)
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-6 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(x @ coef + intercept, ref.predict(x), atol=1e-6 * y.std())


def test_lasso_cv_on_a_constant_target_keeps_every_coefficient_zero():
    x, _ = _design(60, 8, 4)
    alpha, coef, intercept = lasso_cv(x, np.full(60, 2.5), 5, 10, 100)
    assert np.all(coef == 0) and intercept == pytest.approx(2.5)
    assert alpha == LassoCV(alphas=10, cv=5, max_iter=100).fit(x, np.full(60, 2.5)).alpha_
