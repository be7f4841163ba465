"""sklearn's LassoCV model selection, with every fold's Gram matrix derived from one set of sums.

`LassoCV(alphas=n, cv=k)` centres and multiplies the training rows of each of its k folds again (k Gram
matrices of n_fold x p x p each), validates its inputs once per fold and refits the chosen alpha by coordinate
descent on the full design matrix (n x p per sweep). Here the same steps run on sums: X'X, X'y and the column
sums of the training rows once, each fold's centred Gram and X'y by subtracting its held-out block, and the
refit on the centred Gram (p x p per sweep). The coordinate-descent solver, alpha grid, folds (contiguous,
unshuffled), tolerance and selection rule are sklearn's, so the chosen alpha and the coefficients agree with
`LassoCV` up to floating-point rounding (`tests/mtl/test_lasso_cv.py`).
"""

from __future__ import annotations

import warnings

import numpy as np

EPS = 1e-3    # LassoCV's default alpha_min / alpha_max
TOL = 1e-4    # LassoCV's default duality-gap tolerance


def kfold_bounds(n: int, k: int) -> list[tuple[int, int]]:
    """Held-out row ranges [a, b) of sklearn's unshuffled KFold(k) on n rows."""
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    ends = np.cumsum(sizes)
    return [(int(e - s), int(e)) for s, e in zip(sizes, ends)]


def alpha_grid(x: np.ndarray, y: np.ndarray, n_alphas: int) -> np.ndarray:
    """LassoCV's alpha grid: geometric from the smallest alpha with all coefficients zero down by `EPS`."""
    yc = y - y.mean()
    xy = x.T @ yc - x.mean(axis=0) * yc.sum()
    alpha_max = np.sqrt(np.max(xy ** 2)) / len(y)
    if alpha_max <= np.finfo(np.float64).resolution:
        return np.full(n_alphas, np.finfo(np.float64).resolution)
    return np.geomspace(alpha_max, alpha_max * EPS, num=n_alphas)


def _centred(s_xx, s_x, s_xy, s_y, n):
    """Centred Gram, centred X'y, and the column / target means, from the uncentred sums of n rows."""
    mu, ybar = s_x / n, s_y / n
    return s_xx - n * np.outer(mu, mu), s_xy - n * mu * ybar, mu, ybar


def _path(gram, xy, yc, alphas, max_iter):
    """Lasso coefficients (p x len(alphas)) by sklearn's Gram coordinate descent, warm-started along alphas."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import enet_path
    shape = np.broadcast_to(np.zeros(1), (len(yc), gram.shape[0]))  # enet_path reads only the shape of X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, coefs, _ = enet_path(shape, yc, l1_ratio=1.0, alphas=alphas, precompute=gram, Xy=xy,
                                max_iter=max_iter, tol=TOL, check_input=False)
    return coefs


def lasso_cv(x: np.ndarray, y: np.ndarray, cv: int, n_alphas: int, max_iter: int):
    """LassoCV(alphas=n_alphas, cv=cv, max_iter=max_iter).fit(x, y): (alpha_, coef_, intercept_)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    alphas = alpha_grid(x, y, n_alphas)
    s_xx, s_x, s_xy, s_y = x.T @ x, x.sum(axis=0), x.T @ y, y.sum()
    mse = np.zeros(len(alphas))
    for a, b in kfold_bounds(n, cv):
        xt, yt = x[a:b], y[a:b]
        gram, xy, mu, ybar = _centred(s_xx - xt.T @ xt, s_x - xt.sum(axis=0), s_xy - xt.T @ yt,
                                      s_y - yt.sum(), n - (b - a))
        yc = np.concatenate([y[:a], y[b:]]) - ybar
        coefs = _path(gram, xy, yc, alphas, max_iter)
        resid = xt @ coefs + (ybar - mu @ coefs) - yt[:, None]
        mse += (resid ** 2).mean(axis=0)
    alpha = alphas[int(np.argmin(mse / cv))]
    gram, xy, mu, ybar = _centred(s_xx, s_x, s_xy, s_y, n)
    coef = _path(gram, xy, y - ybar, np.array([alpha]), max_iter)[:, 0]
    return float(alpha), coef, float(ybar - mu @ coef)
