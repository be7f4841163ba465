"""Non-negative least squares solvers on normal equations, batched over right-hand sides (PyTorch).

Both solvers minimise, for every column ``b_j`` of ``B`` independently, ``||A x_j - b_j||^2`` subject
to ``x_j >= 0``, given only the Gram matrix ``AtA = A^T A`` (k x k) and ``AtB = A^T B`` (k x n):

* `nnls_bpp`: exact solution by block principal pivoting (Kim & Park 2011, SIAM J. Sci. Comput.),
  all columns at once: every column keeps its own passive set, and each pivoting round solves the
  unconstrained sub-problems of all still-infeasible columns with one batched Cholesky
  factorisation of masked k x k systems. Accepts a warm-start passive set (e.g. the support of the
  previous iterate), which makes repeated solves inside block coordinate descent cheap.
* `hals_sweep`: inexact hierarchical alternating least squares (Cichocki & Phan 2009): exact
  minimisation over one coordinate (row of ``X``) at a time, cycled ``sweeps`` times.
"""

from __future__ import annotations

import torch

#: columns solved per batched factorisation (bounds memory at chunk * k * k numbers)
CHUNK = 16384


def _ridge(ata: torch.Tensor) -> float:
    """A tiny diagonal shift keeping masked Gram blocks positive definite in finite precision."""
    eps = torch.finfo(ata.dtype).eps
    return float(eps * ata.shape[0] * max(float(ata.diagonal().abs().max()), 1e-30))


def _batched_cholesky_solve(m: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve ``m[:, :, c] x[:, c] = b[:, c]`` for SPD k x k systems stored as (k, k, n), b as (k, n).

    A column-vectorised Cholesky: k steps of elementwise work over all n systems at once (cheaper
    than n small LAPACK calls on CPU, and the same code runs on CUDA).
    """
    k = m.shape[0]
    tiny = torch.finfo(m.dtype).tiny ** 0.5
    lower = m  # factorised in place: column j of the lower triangle becomes L[:, j]
    for j in range(k):
        if j:
            lj = lower[j, :j]
            lower[j:, j] -= (lower[j:, :j] * lj.unsqueeze(0)).sum(1)
        d = lower[j, j].clamp_min_(tiny).sqrt_()
        if j + 1 < k:
            lower[j + 1:, j] /= d
    y = torch.empty_like(b)
    for j in range(k):
        y[j] = (b[j] - (lower[j, :j] * y[:j]).sum(0)) / lower[j, j]
    x = torch.empty_like(b)
    for j in reversed(range(k)):
        x[j] = (y[j] - (lower[j + 1:, j] * x[j + 1:]).sum(0)) / lower[j, j]
    return x


def _solve_passive(ata: torch.Tensor, atb: torch.Tensor, passive: torch.Tensor, ridge: float):
    """Unconstrained least squares on each column's passive set; returns (X, Y) with Y = AtA X - AtB.

    ``X`` is zero off the passive set and ``Y`` (the dual / gradient) is zero on it.
    """
    k, n = atb.shape
    x = torch.empty_like(atb)
    idx = torch.arange(k, device=ata.device)
    for s in range(0, n, CHUNK):
        f = passive[:, s:s + CHUNK].to(ata.dtype)  # (k, m) 0/1
        m = ata.unsqueeze(2) * (f.unsqueeze(1) * f.unsqueeze(0))  # (k, k, m) masked Gram blocks
        m[idx, idx] += ridge * f + (1.0 - f)  # identity rows/columns off the passive set
        rhs = atb[:, s:s + CHUNK] * f
        x[:, s:s + CHUNK] = _batched_cholesky_solve(m, rhs) * f
    y = (ata @ x - atb) * (~passive).to(ata.dtype)
    return x, y


def nnls_bpp(ata: torch.Tensor, atb: torch.Tensor, passive: torch.Tensor | None = None,
             max_iter: int | None = None) -> torch.Tensor:
    """Exact NNLS ``argmin_{X >= 0} ||A X - B||_F^2`` from ``AtA`` (k x k) and ``AtB`` (k x n).

    ``passive``: optional boolean k x n initial guess of the support (warm start). Returns X (k x n).
    Block principal pivoting with the full-exchange rule and the single-variable backup rule
    (after three rounds without fewer infeasible variables) that guarantees termination.
    """
    k, n = atb.shape
    if n == 0:
        return atb.clone()
    dev = atb.device
    f = torch.zeros((k, n), dtype=torch.bool, device=dev) if passive is None else passive.clone().bool()
    ridge = _ridge(ata)
    x, y = _solve_passive(ata, atb, f, ridge)
    p = torch.full((n,), 3, dtype=torch.int64, device=dev)
    ninf = torch.full((n,), k + 1, dtype=torch.int64, device=dev)
    rows = torch.arange(k, device=dev).unsqueeze(1)
    max_iter = max_iter if max_iter is not None else 10 * k + 50
    for _ in range(max_iter):
        infeas = (f & (x < 0)) | (~f & (y < 0))
        nviol = infeas.sum(0)
        active = nviol > 0
        if not bool(active.any()):
            break
        better = active & (nviol < ninf)
        ninf = torch.where(better, nviol, ninf)
        p = torch.where(better, torch.full_like(p, 3), p)
        patient = active & ~better & (p > 0)
        p = torch.where(patient, p - 1, p)
        backup = active & ~better & ~patient
        flip = infeas & (better | patient).unsqueeze(0)
        if bool(backup.any()):  # flip only the infeasible variable with the largest index
            last = torch.where(infeas, rows, torch.full_like(rows, -1)).amax(0)
            flip = flip | ((rows == last.unsqueeze(0)) & backup.unsqueeze(0))
        f = f ^ flip
        cols = torch.nonzero(active).squeeze(1)
        xa, ya = _solve_passive(ata, atb[:, cols], f[:, cols], ridge)
        x[:, cols] = xa
        y[:, cols] = ya
    return x.clamp_min(0)


def hals_sweep(ata: torch.Tensor, atb: torch.Tensor, x: torch.Tensor, sweeps: int = 1) -> torch.Tensor:
    """HALS: ``sweeps`` rounds of exact coordinate-wise minimisation over the rows of ``x`` (in place).

    Each row update ``x_j <- max(0, x_j + (AtB_j - AtA_j x) / AtA_jj)`` does not increase the
    objective, so a sweep is monotone. Rows with ``AtA_jj == 0`` are left unchanged.
    """
    k = ata.shape[0]
    for _ in range(sweeps):
        for j in range(k):
            d = float(ata[j, j])
            if d <= 0:
                continue
            num = atb[j] - ata[j] @ x
            x[j] = (x[j] + num / d).clamp_min(0)
    return x
