"""Integrative non-negative matrix factorisation (iNMF, LIGER; Welch et al. 2019), in PyTorch.

For batches ``i = 1..N`` with cells x genes matrices ``X_i`` (normalised and scaled as LIGER does,
see `liger_scale`), iNMF minimises

    sum_i ||X_i - H_i (W + V_i)||_F^2 + lambda * sum_i ||H_i V_i||_F^2,   W, V_i, H_i >= 0,

with ``H_i`` cells x k (cell loadings), ``W`` k x genes (shared metagenes) and ``V_i`` k x genes
(batch-specific metagenes). `fit_inmf` runs LIGER's block coordinate descent (H_i, then V_i, then W),
each block an exact non-negative least squares problem solved on its normal equations by block
principal pivoting (`scfactor.core.nnls.nnls_bpp`, warm-started from the previous support), or by HALS
sweeps (`solver='hals'`). `fit_online_inmf` is the online algorithm of Gao et al. (2021): cells
stream in minibatches, the sufficient statistics ``A_i = sum h h^T`` and ``B_i = sum x h^T`` are
accumulated and ``W``/``V_i`` are updated by HALS on them, so memory does not grow with the cells.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from ..core.errors import InputError, ScfactorError
from ..core.nnls import hals_sweep, nnls_bpp

SOLVERS = ("anls", "hals")


# --------------------------------------------------------------------------- preprocessing
def library_normalize(x):
    """Divide each cell (row) by its total (LIGER ``normalize``); rows summing to 0 stay 0."""
    if sp.issparse(x):
        x = sp.csr_matrix(x, dtype=np.float64)
        lib = np.asarray(x.sum(axis=1)).ravel()
        inv = np.divide(1.0, lib, out=np.zeros_like(lib), where=lib > 0)
        return sp.csr_matrix(sp.diags(inv) @ x)
    x = np.asarray(x, dtype=np.float64)
    lib = x.sum(axis=1, keepdims=True)
    return np.divide(x, lib, out=np.zeros_like(x), where=lib > 0)


def rms_scale_factors(x) -> np.ndarray:
    """Per-gene root mean square ``sqrt(sum_c x^2 / (n - 1))`` (LIGER ``scaleNotCenter``); 1 where 0."""
    n = x.shape[0]
    sq = np.asarray(x.multiply(x).sum(axis=0)).ravel() if sp.issparse(x) else (np.asarray(x) ** 2).sum(0)
    rms = np.sqrt(sq / max(n - 1, 1))
    return np.where(rms > 0, rms, 1.0)


def liger_scale(x, gene_mask: np.ndarray | None = None):
    """LIGER preprocessing of one batch: library-size normalise (over all genes of ``x``), keep the
    selected genes, scale each gene by its RMS without centring. Returns float64 cells x genes,
    CSR when ``x`` is sparse (scaling keeps zeros), dense otherwise."""
    xn = library_normalize(x)
    if gene_mask is not None:
        xn = xn[:, np.asarray(gene_mask, bool)]
    inv = 1.0 / rms_scale_factors(xn)
    if sp.issparse(xn):
        return sp.csr_matrix(xn @ sp.diags(inv))
    return np.asarray(xn) * inv


# --------------------------------------------------------------------------- validation
def check_inputs(mats: Sequence, names: Sequence[str], k: int, path="input") -> None:
    """Raise a one-line error for inputs iNMF cannot factorise (see issue: bad inputs)."""
    if len(mats) < 2:
        raise InputError(path, f"integration needs at least 2 batches, got {len(mats)} "
                               f"({', '.join(map(str, names)) or 'none'})")
    n_genes = mats[0].shape[1]
    if n_genes == 0:
        raise InputError(path, "no genes shared by all batches")
    for m, b in zip(mats, names):
        if m.shape[1] != n_genes:
            raise InputError(path, f"batch {b!r} has {m.shape[1]} genes, expected {n_genes}")
        v = m.data if sp.issparse(m) else np.asarray(m)
        if v.size and not np.isfinite(v).all():
            raise InputError(path, f"batch {b!r} has NaN or infinite values")
        if v.size and (v < 0).any():
            raise InputError(path, f"batch {b!r} has {int((v < 0).sum())} negative values; "
                                   "iNMF needs non-negative input")
    check_factor_count(k, n_genes, dict(zip(names, (m.shape[0] for m in mats))), path)


def check_factor_count(k: int, n_genes: int, batch_cells: dict, path) -> None:
    """Raise a one-line error unless ``k`` factors are fewer than the genes and than the cells of every batch
    (``batch_cells``: batch name -> cells), naming the smallest batch and what to change."""
    if k < 1:
        raise InputError(path, f"k must be >= 1, got {k}")
    if k >= n_genes:
        raise InputError(path, f"k={k} factors is not smaller than the number of genes ({n_genes})")
    name, smallest = min(batch_cells.items(), key=lambda item: item[1])
    if k >= smallest:
        raise InputError(path, f"k={k} factors is not smaller than the number of cells in the smallest batch "
                               f"({name!r}: {smallest} cells): lower integrate.k, or leave that batch out "
                               "(datasets.<name>.batches; integrate.py --batches)")


# --------------------------------------------------------------------------- batch iNMF
@dataclasses.dataclass
class INMFResult:
    """Factors (numpy, float64) and diagnostics of one iNMF fit."""
    W: np.ndarray                  # k x genes
    V: list                        # per batch, k x genes
    H: list                        # per batch, cells x k
    objective: float
    trace: list                    # objective after initialisation and after each iteration
    rep: int
    seed: int
    iterations: int
    seconds: float
    solver: str
    rep_objectives: list = dataclasses.field(default_factory=list)


def uniform_init(n_cells: Sequence[int], n_genes: int, k: int, seed: int):
    """LIGER's initialisation: W, V_i, H_i ~ Uniform(0, 2), from a seeded numpy generator."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0, 2, (k, n_genes))
    v = [rng.uniform(0, 2, (k, n_genes)) for _ in n_cells]
    h = [rng.uniform(0, 2, (n, k)) for n in n_cells]
    return w, v, h


class _Data:
    """One batch's matrix on the device: dense, or CSR (with its transpose) when sparse enough."""

    def __init__(self, x, device, dtype, sparse_below: float = 0.3):
        x = np.asarray(x) if not sp.issparse(x) else x
        nnz = x.nnz if sp.issparse(x) else int(np.count_nonzero(x))
        self.shape = x.shape
        self.sparse = nnz < sparse_below * x.shape[0] * x.shape[1]
        if self.sparse:
            xc = sp.csr_matrix(x, dtype=np.float64)
            self.x = _torch_csr(xc, device, dtype)
            self.xt = _torch_csr(sp.csr_matrix(xc.T), device, dtype)
            self.sq = float(np.sum(xc.data ** 2))
        else:
            dense = x.toarray() if sp.issparse(x) else np.asarray(x)
            self.x = torch.as_tensor(dense, dtype=dtype, device=device)
            self.xt = None
            self.sq = float(torch.sum(self.x * self.x))

    def left(self, m):
        """``m @ X`` for m: k x cells -> k x genes."""
        return (self.xt @ m.T).T if self.sparse else m @ self.x

    def right(self, m):
        """``m @ X^T`` for m: k x genes -> k x cells."""
        return (self.x @ m.T).T if self.sparse else m @ self.x.T


def _torch_csr(x, device, dtype):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.as_tensor(x.indptr, dtype=torch.int64),
                                       torch.as_tensor(x.indices, dtype=torch.int64),
                                       torch.as_tensor(x.data, dtype=dtype), size=x.shape).to(device)


def _objective(xx, hth, htx, w, v, lam):
    """iNMF objective from sufficient statistics: ||X||^2, H^T H, H^T X per batch."""
    total = 0.0
    for i in range(len(v)):
        wv = w + v[i]
        fit = xx[i] - 2 * torch.sum(htx[i] * wv) + torch.sum(hth[i] * (wv @ wv.T))
        total = total + fit + lam * torch.sum(hth[i] * (v[i] @ v[i].T))
    return float(total)


def _solve(solver, ata, atb, x_prev, sweeps):
    """One block update: exact BPP (warm start from the previous support) or HALS sweeps."""
    if solver == "anls":
        return nnls_bpp(ata, atb, passive=x_prev > 0)
    return hals_sweep(ata, atb, x_prev.clone(), sweeps)


def _run_once(xs, k, lam, max_iters, thresh, seed, solver, hals_sweeps, device, dtype, log, rep):
    n_genes = xs[0].shape[1]
    w0, v0, h0 = uniform_init([x.shape[0] for x in xs], n_genes, k, seed)
    t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    w, v, ht = t(w0), [t(a) for a in v0], [t(a).T.contiguous() for a in h0]  # H stored k x cells
    xx = [x.sq for x in xs]
    hth = [h @ h.T for h in ht]
    htx = [x.left(h) for h, x in zip(ht, xs)]
    trace = [_objective(xx, hth, htx, w, v, lam)]
    t0 = time.perf_counter()
    it = 0
    for it in range(1, max_iters + 1):
        for i, x in enumerate(xs):  # H_i: rows [W + V_i ; sqrt(lam) V_i]
            wv = w + v[i]
            ata = wv @ wv.T + lam * (v[i] @ v[i].T)
            atb = x.right(wv)
            ht[i] = _solve(solver, ata, atb, ht[i], hals_sweeps)
            hth[i] = ht[i] @ ht[i].T
            htx[i] = x.left(ht[i])
        for i in range(len(xs)):  # V_i: rows [H_i ; sqrt(lam) H_i]
            v[i] = _solve(solver, (1 + lam) * hth[i], htx[i] - hth[i] @ w, v[i], hals_sweeps)
        ata = sum(hth)
        atb = sum(htx[i] - hth[i] @ v[i] for i in range(len(xs)))
        w = _solve(solver, ata, atb, w, hals_sweeps)
        obj = _objective(xx, hth, htx, w, v, lam)
        prev = trace[-1]
        trace.append(obj)
        if log is not None:
            el = time.perf_counter() - t0
            log(f"rep {rep} iter {it}/{max_iters} objective {obj:.6g} "
                f"({it / el:.2f} it/s, ETA {(max_iters - it) * el / it:.1f} s)")
        if abs(prev - obj) / max((prev + obj) / 2, 1e-300) < thresh:
            break
    return w, v, ht, trace, it, time.perf_counter() - t0


def fit_restarts(mats: Sequence, *, k: int, lam: float, max_iters: int, thresh: float, nrep: int, seed: int,
                 solver: str, hals_sweeps: int, device="cpu", dtype=torch.float64,
                 log: Callable[[str], None] | None = None) -> list[INMFResult]:
    """Fit iNMF ``nrep`` times to scaled per-batch matrices (cells x genes, dense or sparse) by block
    coordinate descent; one result per restart, in order.

    The settings are those of the integrate schema (``lambda`` -> ``lam``); none has a default here.

    Restart ``r`` (0-based) is initialised with seed ``seed + r``. Each stops early when the relative
    objective change ``|f_prev - f| / mean(f_prev, f)`` falls below ``thresh`` (LIGER's rule).
    """
    if solver not in SOLVERS:
        raise ScfactorError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    xs = [_Data(m, device, dtype) for m in mats]
    out = []
    for r in range(nrep):
        w, v, ht, trace, iters, secs = _run_once(xs, k, lam, max_iters, thresh, seed + r, solver,
                                                 hals_sweeps, device, dtype, log, r)
        out.append(INMFResult(W=w.cpu().numpy(), V=[a.cpu().numpy() for a in v],
                              H=[h.T.cpu().numpy() for h in ht], objective=trace[-1], trace=trace,
                              rep=r, seed=seed + r, iterations=iters, seconds=secs, solver=solver))
    objectives = [f.objective for f in out]
    for f in out:
        f.rep_objectives = objectives
    return out


def fit_inmf(mats: Sequence, **settings) -> INMFResult:
    """`fit_restarts` (same keyword settings), the restart with the lowest final objective returned."""
    fits = fit_restarts(mats, **settings)
    return fits[int(np.argmin([f.objective for f in fits]))]


def inmf_objective(mats, w, v, h, lam) -> float:
    """The iNMF objective evaluated directly (dense residuals; for tests and benchmarks)."""
    total = 0.0
    for x, vi, hi in zip(mats, v, h):
        x = x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)
        total += float(np.sum((x - hi @ (w + vi)) ** 2) + lam * np.sum((hi @ vi) ** 2))
    return total


def nmf(x, k: int, *, max_iters: int, seed: int, solver: str, hals_sweeps: int, device="cpu",
        dtype=torch.float64) -> np.ndarray:
    """Plain NMF ``X ~ H W`` of one matrix by alternating NNLS; returns H (cells x k).

    Used for LIGER's agreement metric (each batch factorised alone).
    """
    rng = np.random.default_rng(seed)
    xd = _Data(x, device, dtype)
    w = torch.as_tensor(rng.uniform(0, 2, (k, xd.shape[1])), dtype=dtype, device=device)
    ht = torch.as_tensor(rng.uniform(0, 2, (k, xd.shape[0])), dtype=dtype, device=device)
    for _ in range(max_iters):
        ht = _solve(solver, w @ w.T, xd.right(w), ht, hals_sweeps)
        w = _solve(solver, ht @ ht.T, xd.left(ht), w, hals_sweeps)
    return ht.T.cpu().numpy()


# --------------------------------------------------------------------------- online iNMF
@dataclasses.dataclass
class OnlineResult:
    """Factors of an online iNMF fit; H is filled by a final streaming pass."""
    W: np.ndarray
    V: list
    H: list
    objective: float
    epoch_objectives: list
    cells_seen: int
    seconds: float


def fit_online_inmf(stream_factory: Callable[[int], Iterable], n_cells: Sequence[int], n_genes: int,
                    *, k: int, lam: float, epochs: int, seed: int, device="cpu", dtype=torch.float64,
                    h_stream: Callable[[], Iterable] | None = None,
                    log: Callable[[str], None] | None = None) -> OnlineResult:
    """Online iNMF (Gao et al. 2021, scenario 1: all batches streamed for ``epochs`` passes).

    ``stream_factory(epoch)`` yields ``(batch_index, cell_indices, X_minibatch)`` with ``X`` a dense
    cells x genes array already scaled as in `liger_scale`. For every minibatch: solve ``H`` exactly
    (BPP) given ``W``/``V_i``; accumulate ``A_i += H^T H`` and ``B_i += H^T X``; then one HALS pass over
    the columns of ``W`` and ``V_i`` on ``(A_i, B_i)``. Memory: O(k * genes * batches) plus one
    minibatch. Finally ``h_stream()`` (default ``stream_factory(-1)``) is streamed once more to solve
    every cell's ``H`` with the final metagenes, and the objective is accumulated on that pass.
    """
    nb = len(n_cells)
    rng = np.random.default_rng(seed)
    t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    w = t(rng.uniform(0, 2, (k, n_genes)))
    v = [t(rng.uniform(0, 2, (k, n_genes))) for _ in range(nb)]
    a_stat = [torch.zeros((k, k), dtype=dtype, device=device) for _ in range(nb)]
    b_stat = [torch.zeros((k, n_genes), dtype=dtype, device=device) for _ in range(nb)]
    t0 = time.perf_counter()
    seen = 0
    total_cells = int(sum(n_cells))
    epoch_obj = []
    for epoch in range(epochs):
        obj = 0.0
        for bi, _, xm in stream_factory(epoch):
            x = _Data(xm, device, dtype)
            wv = w + v[bi]
            ht = nnls_bpp(wv @ wv.T + lam * (v[bi] @ v[bi].T), x.right(wv))
            hth = ht @ ht.T
            htx = x.left(ht)
            obj += _objective([x.sq], [hth], [htx], w, [v[bi]], lam)
            a_stat[bi] += hth
            b_stat[bi] += htx
            # HALS on the accumulated statistics: rows of V_i (this minibatch's batch), then of W
            hals_sweep((1 + lam) * a_stat[bi], b_stat[bi] - a_stat[bi] @ w, v[bi], 1)
            ata = sum(a_stat)
            atb = sum(b_stat[i] - a_stat[i] @ v[i] for i in range(nb))
            hals_sweep(ata, atb, w, 1)
            seen += x.shape[0]
        epoch_obj.append(obj)
        if log is not None:
            el = time.perf_counter() - t0
            log(f"online epoch {epoch + 1}/{epochs}: minibatch objective {obj:.6g}, "
                f"{seen / el:.0f} cells/s, ETA {(epochs - epoch - 1) * el / (epoch + 1):.1f} s")
    h = [np.zeros((n, k)) for n in n_cells]
    final = 0.0
    for bi, idx, xm in (h_stream() if h_stream is not None else stream_factory(-1)):
        x = _Data(xm, device, dtype)
        wv = w + v[bi]
        ht = nnls_bpp(wv @ wv.T + lam * (v[bi] @ v[bi].T), x.right(wv))
        final += _objective([x.sq], [ht @ ht.T], [x.left(ht)], w, [v[bi]], lam)
        h[bi][idx] = ht.T.cpu().numpy()
    if log is not None:
        log(f"online iNMF: {total_cells} cells, final objective {final:.6g}")
    return OnlineResult(W=w.cpu().numpy(), V=[a.cpu().numpy() for a in v], H=h, objective=final,
                        epoch_objectives=epoch_obj, cells_seen=seen, seconds=time.perf_counter() - t0)


def minibatch_order(n_cells: Sequence[int], chunk: int, seed: int) -> list[tuple[int, int, int]]:
    """Seeded shuffled order of (batch, start, stop) cell chunks covering every batch once."""
    rng = np.random.default_rng(seed)
    chunks = [(b, s, min(s + chunk, n)) for b, n in enumerate(n_cells) for s in range(0, n, chunk)]
    order = rng.permutation(len(chunks))
    return [chunks[i] for i in order]

