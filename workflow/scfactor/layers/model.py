"""Multilayer ("neural") NMF of the multilayer NMF notebook, in PyTorch.

``X`` (cells x genes) is factorised in layers: ``X ~ theta1 S1``, ``S1 ~ theta2 S2``, ... with
``theta1`` (cells x k1), ``theta2`` (k1 x k2) and ``S_l`` (k_l x genes); ``beta_l = S_l^T`` (genes
x k_l). The thetas are network parameters learned by autograd (Adam, projected onto >= 0 after each
step); each ``S_l`` is *not* a parameter but the solution of a non-negative regression of the layer
input on ``theta_l``:

- ``nnls``: ``S_l = argmin_{S >= 0} ||Y_l - theta_l S||_F^2`` (HALS coordinate descent,
  `scfactor.core.nnls.hals_sweep`, warm-started from the previous epoch), then re-solved exactly on
  its support with a batched ``k x k`` solve so that autograd differentiates through the NNLS
  solution (the Neural NMF gradient of Gao et al., which the reference computes column by column
  with pseudo-inverses). Loss: mean squared error.
- ``poisson``: ``S_l`` by Poisson / KL multiplicative updates (Lee & Seung; the ML version of the
  PMF update the reference borrowed from ASAP), warm-started, with the last update unrolled in
  autograd. Loss: mean Poisson deviance (the negative log-likelihood up to a constant).

The loss compares ``X`` with the deepest reconstruction ``theta1 theta2 ... theta_L S_L`` as in the
reference. Everything is dense, batched matrix algebra (no per-gene Python loop).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.log import Progress
from ..core.nnls import hals_sweep

SOLVERS = ("nnls", "poisson")
_EPS = 1e-10


@dataclass
class LayeredNMFResult:
    """Fitted factors: ``thetas[l]`` (rows x k_l), ``betas[l]`` (genes x k_l), loss per epoch."""

    thetas: list
    betas: list
    loss: np.ndarray
    layers: list
    solver: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    params: dict = field(default_factory=dict)

    def cell_factors(self, level: int | None = None) -> np.ndarray:
        """Cell loadings at a layer: ``theta1 @ ... @ theta_level`` (cells x k_level; default: last)."""
        level = len(self.thetas) if level is None else level
        out = self.thetas[0]
        for t in self.thetas[1:level]:
            out = out @ t
        return out


def _solve_on_support(gram, rhs, support):
    """Exact least squares restricted to each column's support (batched ``k x k`` solves).

    Column m solves ``G[P,P] s_P = B[P,m]`` and sets ``s`` to 0 off ``P``; differentiable in G, B.
    """
    p = support.T.to(gram.dtype)                                   # M x k
    k = gram.shape[0]
    eye = torch.eye(k, dtype=gram.dtype, device=gram.device)
    g = gram.unsqueeze(0) * (p.unsqueeze(2) * p.unsqueeze(1)) + torch.diag_embed(1.0 - p) \
        + 1e-8 * eye                                               # M x k x k (ridge for rank-deficient A)
    b = (rhs.T * p).unsqueeze(2)                                   # M x k x 1
    s = torch.linalg.solve(g, b).squeeze(2).T                      # k x M
    return s.clamp_min(0.0)


def _mu_poisson(y, a, s, iters):
    """Poisson (KL) multiplicative updates of ``S`` in ``Y ~ A S`` (no autograd)."""
    denom = a.sum(0).clamp_min(_EPS).unsqueeze(1)
    for _ in range(iters):
        s = s * (a.T @ (y / (a @ s).clamp_min(_EPS))) / denom
    return s


def _mu_step(y, a, s):
    """One differentiable multiplicative update (``s`` detached, gradient flows through ``a`` / ``y``)."""
    return s * (a.T @ (y / (a @ s).clamp_min(_EPS))) / a.sum(0).clamp_min(_EPS).unsqueeze(1)


def reconstruct(thetas, s_last):
    """The deepest reconstruction ``theta1 theta2 ... thetaL S_L`` (multiplied from the right)."""
    xhat = s_last
    for a in reversed(thetas):
        xhat = a @ xhat
    return xhat


def descend(opt, loss, params) -> None:
    """One step of ``opt`` on ``loss``, then ``params`` projected onto >= 0."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        for a in params:
            a.clamp_min_(0.0)


def record(trace: np.ndarray, epoch: int, value: float, progress, log_every) -> None:
    """Store epoch ``epoch``'s loss; `FloatingPointError` when it is not finite; log the first, every
    ``log_every``-th and the last epoch (``progress``: a `Progress` or None)."""
    trace[epoch] = value
    if not math.isfinite(value):
        raise FloatingPointError(f"loss became {value} at epoch {epoch + 1}; lower the learning rate")
    if progress is not None and ((epoch + 1) % log_every == 0 or epoch == 0 or epoch + 1 == len(trace)):
        progress.log(epoch + 1, loss=value)


def _loss(x, xhat, solver, xlogx=0.0):
    """MSE (nnls) or mean Poisson deviance ``2 mean(x log(x/xhat) - x + xhat)`` (poisson).

    ``xlogx`` is the constant ``mean(x log x - x)`` so that the deviance is >= 0 and 0 at a perfect fit.
    """
    if solver == "nnls":
        return torch.mean((x - xhat) ** 2)
    xhat = xhat.clamp_min(_EPS)
    return 2.0 * (torch.mean(xhat - x * torch.log(xhat)) + xlogx)


def validate_layers(layers, n_rows: int, n_cols: int) -> list:
    """Check the layer widths: positive, non-increasing, the first below min(cells, genes)."""
    layers = [int(k) for k in layers]
    if not layers:
        raise ValueError("layers must list at least one width")
    if any(k < 1 for k in layers):
        raise ValueError(f"layer widths must be >= 1; got {layers}")
    if any(b > a for a, b in zip(layers, layers[1:])):
        raise ValueError(f"layer widths must not increase; got {layers}")
    if layers[0] > min(n_rows, n_cols):
        raise ValueError(f"first layer ({layers[0]}) wider than min(cells, genes) = {min(n_rows, n_cols)}")
    return layers


def fit_layered_nmf(x, *, layers, solver: str, epochs: int, lr: float, seed: int, inner_iters: int,
                    device="cpu", log_every: int | None = None, dtype=None) -> LayeredNMFResult:
    """Fit the multilayer NMF to a dense or sparse non-negative matrix ``x`` (rows x genes).

    The settings are those of schema ``layers`` (no defaults here: callers pass the options object's
    values, see `scfactor.layers.pipeline.fit`). ``inner_iters``: HALS sweeps (nnls) or multiplicative
    updates (poisson, the last one inside autograd) of each ``S_l`` per epoch, warm-started from the
    previous epoch. ``device``: a resolved torch device; ``log_every``: log progress (epoch, loss, rate,
    ETA) every that many epochs, and at the first and last. Returns thetas, betas (genes x k), the loss trace.
    """
    import scipy.sparse as sp

    if solver not in SOLVERS:
        raise ValueError(f"unknown beta solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if inner_iters < 1:
        raise ValueError(f"inner_iters must be >= 1; got {inner_iters}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {epochs}")
    dtype = dtype or torch.float32
    dev = torch.device(device)
    xd = x.toarray() if sp.issparse(x) else np.asarray(x)
    layers = validate_layers(layers, *xd.shape)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    X = torch.as_tensor(xd, dtype=dtype).to(dev)
    n, m = X.shape
    # scale of the random start: theta entries ~ U(0, 1) * c so that theta1..thetaL S ~ mean(X)
    dims = [n] + layers
    scale = (float(X.mean()) / layers[-1]) ** (1.0 / (len(layers) + 1)) if float(X.mean()) > 0 else 1.0
    thetas = [torch.nn.Parameter((torch.rand(dims[i], dims[i + 1], generator=gen, dtype=dtype) * scale)
                                 .to(dev)) for i in range(len(layers))]
    s_prev = [(torch.rand(k, m, generator=gen, dtype=dtype) * scale).to(dev) for k in layers]
    opt = torch.optim.Adam(thetas, lr=lr)
    xlogx = float(torch.mean(torch.special.xlogy(X, X) - X)) if solver == "poisson" else 0.0
    trace = np.empty(epochs)
    progress = Progress("layers", epochs) if log_every else None
    t0 = time.perf_counter()
    c0 = time.process_time()
    for epoch in range(epochs):
        y = X
        s_list = []
        for li, a in enumerate(thetas):
            if solver == "nnls":
                gram, rhs = a.T @ a, a.T @ y
                with torch.no_grad():
                    s0 = hals_sweep(gram.detach(), rhs.detach(), s_prev[li].clone(), inner_iters)
                s = _solve_on_support(gram, rhs, s0 > 0)
                s_prev[li] = s.detach()
            else:
                with torch.no_grad():
                    s0 = _mu_poisson(y.detach(), a.detach(), s_prev[li], inner_iters - 1)
                s = _mu_step(y, a, s0)
                s_prev[li] = s.detach().clamp_min(_EPS)
            s_list.append(s)
            y = s
        loss = _loss(X, reconstruct(thetas, s_list[-1]), solver, xlogx)
        descend(opt, loss, thetas)
        record(trace, epoch, float(loss.detach()), progress, log_every)
    # final factors: S_l re-solved for the final thetas (the thetas are stored once, at the end)
    with torch.no_grad():
        y = X
        betas = []
        for li, a in enumerate(thetas):
            if solver == "nnls":
                gram = a.T @ a
                s0 = hals_sweep(gram, a.T @ y, s_prev[li].clone(), inner_iters)
                s = _solve_on_support(gram, a.T @ y, s0 > 0)
            else:
                s = _mu_poisson(y, a, s_prev[li], inner_iters)
            betas.append(s.T.cpu().numpy().astype(np.float64))
            y = s
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    return LayeredNMFResult(thetas=[t.detach().cpu().numpy().astype(np.float64) for t in thetas],
                            betas=betas, loss=trace, layers=layers, solver=solver, seconds=seconds,
                            cpu_seconds=cpu_seconds,
                            params={"epochs": epochs, "lr": lr, "seed": seed, "inner_iters": inner_iters})


# --------------------------------------------------------------------------- recovery metrics
def factor_weights(beta: np.ndarray) -> np.ndarray:
    """Column sums of a genes x k loading matrix (the counts one unit of each factor produces)."""
    return np.asarray(beta).sum(axis=0)


def matched_correlation(learned: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(Hungarian-matched, best-match) mean Pearson correlation of ``truth``'s columns with ``learned``'s.

    Each true column is paired with a distinct learned column by maximising the summed correlation
    (needs k_learned >= k_true for all to be paired); the best-match value lets learned columns repeat.
    """
    from scipy.optimize import linear_sum_assignment
    kl = learned.shape[1]
    c = np.corrcoef(np.asarray(learned, float).T, np.asarray(truth, float).T)[:kl, kl:]
    c = np.nan_to_num(c, nan=0.0)
    rows, cols = linear_sum_assignment(-c)
    return float(c[rows, cols].sum() / truth.shape[1]), float(c.max(axis=0).mean())


def recovery_metrics(result: LayeredNMFResult, theta_true: np.ndarray, beta_true: np.ndarray,
                     blocks) -> dict:
    """Factor recovery against a simulation's truth, per layer.

    ``beta_match_corr_l<l>`` / ``beta_best_corr_l<l>``: matched / best-match correlation of the true
    beta columns with ``beta_l``; ``theta_match_corr_l<l>``: same for the cell loadings
    ``theta1 ... theta_l`` scaled by the factor weights; ``ari_l<l>``: ARI of the argmax of those
    scaled loadings against the true cell blocks; ``ari_truth``: the same ARI for the true theta
    (the ceiling the simulation's background noise allows).
    """
    from sklearn.metrics import adjusted_rand_score
    blocks = np.asarray(blocks)
    out = {"ari_truth": adjusted_rand_score(blocks, (theta_true * factor_weights(beta_true)).argmax(1))}
    for level in range(1, len(result.thetas) + 1):
        beta = result.betas[level - 1]
        cells = result.cell_factors(level) * factor_weights(beta)
        out[f"beta_match_corr_l{level}"], out[f"beta_best_corr_l{level}"] = matched_correlation(beta, beta_true)
        out[f"theta_match_corr_l{level}"], _ = matched_correlation(cells, theta_true)
        out[f"ari_l{level}"] = adjusted_rand_score(blocks, cells.argmax(1))
    return {k: float(v) for k, v in out.items()}
