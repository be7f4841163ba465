r"""Negative-binomial (Poisson-Gamma) mixture clustering of count data (the model-based clustering notebook).

Model: :math:`x_{ij} \sim \mathrm{Poisson}(s_i \lambda_{ij})`, :math:`\lambda_{ij} \sim \sum_k \pi_k
\mathrm{Gamma}(r_{kj}, r_{kj} / \mu_{kj})` with :math:`s_i = \sum_j x_{ij}`, so that given the
component :math:`x_{ij} \sim \mathrm{NB}(\text{mean } s_i \mu_{kj}, \text{inverse dispersion } r_{kj})`.

Two fitting algorithms:

* `fit_em`: batch EM. E step analytic (softmax over k of :math:`\log\pi_k + \sum_j \log
  \mathrm{NB}`); M step :math:`\pi_k` = mean responsibility and, for every (component, gene) at
  once, safeguarded Newton steps on the weighted NB log-likelihood in (log mu, log r), warm started
  between rounds. Each Newton step is accepted only where it does not lower that (k, gene)'s
  objective, so the log-likelihood never decreases. Sparse input stays sparse: the count-dependent
  terms are evaluated on the nonzeros only; the zero-count part is a dense function of
  :math:`(s_i, \mu_{kj}, r_{kj})` evaluated in chunks of cells.
* `fit_amortized`: an encoder ``log1p -> Linear(p,128) -> ReLU -> Linear(128,k) -> softmax`` trained
  with the component parameters on the ELBO over minibatches read from the sparse matrix,
  optionally initialised from `fit_em` on a subsample; `AmortizedNBMix.assign` labels new cells
  without refitting.

Parameters are stored as ``log_mean [k, p]`` (log mu) and ``log_inv_disp [k, p]`` (log r), as in
the reference implementation (aksarkar/mpebpm ``gam_mix``).

The settings that the schema ``nbmix.schema.yaml`` defines (initialisation, restarts, rounds, tolerance,
Newton steps, PCs, dtype, amortised epochs ...) have no defaults here: the pipeline passes them from the
step's options object (`scfactor.nbmix.cli.FIT`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from ..core.csr_stack import row_sums
from ..core.errors import InputError, ScfactorError
from ..core.log import LOG
from .starts import Starts, random_responsibilities, subsample_rows

LOG_MEAN_BOUNDS = (-40.0, 5.0)
LOG_INV_DISP_BOUNDS = (-12.0, 16.0)
#: the M step sums the zero-count terms per (component, distinct size factor) instead of per (cell, component)
#: pair when that leaves at most this fraction of the rows (`Pairs`); exact up to the order of summation
SIZE_GROUPS_MAX_FRACTION = 0.25


# --------------------------------------------------------------------------- data
#: value types of a CSR that the counts keep as they are (others are converted to float64 once)
_TORCH_VALUE_TYPES = tuple(np.dtype(t) for t in (np.float64, np.float32, np.int64, np.int32, np.int16,
                                                 np.int8, np.uint8))


class CountData:
    """Counts on a torch device in CSR form (nonzeros only), with size factors ``s_i = sum_j x_ij``.

    The nonzeros are kept as the CSR's own arrays (shared with ``x`` on the CPU, in their stored integer or
    float type) and converted to int64 indices / ``dtype`` values one chunk at a time (`nonzeros`,
    `chunk_rows`), so that the fit holds no per-nonzero copy of the matrix. ``chunk_cells`` rows are processed
    at a time by the dense (zero-count) terms so that memory stays at ``chunk_cells * k * p`` elements.
    """

    def __init__(self, x, device="cpu", dtype=torch.float64, chunk_elems: int = 4_000_000, path="X"):
        x = sp.csr_matrix(x)
        x.sum_duplicates()
        s = validate_counts_matrix(x, path).astype(np.float64)
        self.n, self.p = x.shape
        self.device = torch.device(device)
        self.dtype = dtype
        self.csr = x
        self.chunk_elems = int(chunk_elems)
        self.s = torch.as_tensor(s, dtype=dtype, device=self.device)
        self.log_s = torch.log(self.s)
        self.indptr = x.indptr.astype(np.int64)
        self._indices = torch.as_tensor(x.indices, device=self.device)
        data = x.data if x.data.dtype in _TORCH_VALUE_TYPES else x.data.astype(np.float64)
        self._data = torch.as_tensor(data, device=self.device)
        # sum_j lgamma(x_ij + 1): constant in the parameters, kept so that log-likelihoods are exact
        #: E steps (`component_loglik` calls) over these cells so far
        self.e_steps = 0
        self.lgamma_x1 = torch.zeros(self.n, dtype=dtype, device=self.device)
        for a, b, nz in self.chunks(1):
            self.lgamma_x1[a:b].index_add_(0, self.chunk_rows(a, b), torch.lgamma(self.nonzeros(nz)[1] + 1))
        self._count_pairs()
        # distinct size factors: the zero-count term depends on a cell only through s_i
        s_unique, s_inverse = np.unique(s, return_inverse=True)
        self.s_unique = torch.as_tensor(s_unique, dtype=dtype, device=self.device)
        self.s_inverse = torch.as_tensor(s_inverse.ravel(), device=self.device)

    def _count_pairs(self) -> None:
        """The distinct (gene, count) pairs of the nonzeros: ``pair_gene`` (int64) and ``pair_x`` (``dtype``), and the
        lookup that `nonzeros` turns a nonzero's gene and count into its pair's index with (``_offset`` per gene,
        ``_slot`` per (gene, count) up to the gene's largest count). The special functions of ``x + r`` (lgamma,
        digamma, trigamma) are evaluated once per pair and component (`pair_table`) instead of once per nonzero
        and component; no per-nonzero index is stored (it was 4 bytes per nonzero: 1.6 GB at a million cells)."""
        x = self.csr
        top = np.zeros(self.p, dtype=np.int64)                       # largest count per gene, rows in chunks
        rows = max(1, self.chunk_elems // max(1, self.p))
        for a in range(0, self.n, rows):
            np.maximum(top, x[a:a + rows].max(axis=0).toarray().ravel().astype(np.int64), out=top)
        offset = np.concatenate([[0], np.cumsum(top + 1)])          # gene j's counts 0..top_j at offset_j + x
        seen = np.zeros(int(offset[-1]), dtype=bool)
        step = max(1, self.chunk_elems)
        for lo in range(0, x.nnz, step):
            seen[offset[x.indices[lo:lo + step]] + x.data[lo:lo + step].astype(np.int64)] = True
        keys = np.flatnonzero(seen)
        del seen
        slot = np.zeros(int(offset[-1]), dtype=np.int64)
        slot[keys] = np.arange(len(keys), dtype=np.int64)
        gene = np.searchsorted(offset, keys, side="right") - 1
        self._offset = torch.as_tensor(offset[:-1], device=self.device)
        self._slot = torch.as_tensor(slot, device=self.device)
        self.pair_gene = torch.as_tensor(gene, device=self.device)
        self.pair_x = torch.as_tensor(keys - offset[gene], dtype=self.dtype, device=self.device)

    def pair_table(self, fn, log_inv_disp) -> torch.Tensor:
        """``[k, pairs]``: ``fn(x + r_kj)`` for every distinct (gene j, count x) pair (`_count_pairs`)."""
        return fn(self.pair_x + torch.exp(log_inv_disp[:, self.pair_gene]))

    def chunks(self, k: int):
        """Yield ``(a, b, nz_slice)`` row ranges of at most ``chunk_elems / (k p)`` cells."""
        step = max(1, self.chunk_elems // max(1, k * self.p))
        for a in range(0, self.n, step):
            b = min(self.n, a + step)
            yield a, b, slice(int(self.indptr[a]), int(self.indptr[b]))

    def chunk_rows(self, a: int, b: int) -> torch.Tensor:
        """Row of each nonzero of cells ``a:b``, counted from ``a`` (int64)."""
        cnt = torch.as_tensor(np.diff(self.indptr[a:b + 1]), device=self.device)
        return torch.repeat_interleave(torch.arange(b - a, device=self.device), cnt)

    def nonzeros(self, nz, pairs: bool = False) -> tuple[torch.Tensor, ...]:
        """``(gene (int64), count (dtype))`` of the nonzeros ``nz`` (a slice or an index tensor), and with ``pairs``
        each one's index (int64) into `pair_table`, looked up from the stored counts (exact whatever ``dtype``
        rounds them to) through two small tables (`_count_pairs`)."""
        genes, raw = self._indices[nz].long(), self._data[nz]
        if not pairs:
            return genes, raw.to(self.dtype)
        return genes, raw.to(self.dtype), self._slot.index_select(0, self._offset.index_select(0, genes) + raw.long())


def validate_counts_matrix(x, path="X", k: int | None = None) -> np.ndarray:
    """Raise `InputError` for counts the mixture cannot fit: empty, negative, non-integer, NaN,
    a cell with zero total count, or ``k`` larger than the number of cells; else return the cells' total counts
    (`row_sums`: int64 for integer counts)."""
    from ..core.io import validate_counts
    x = sp.csr_matrix(x)
    validate_counts(x, path, what="counts", integer=True)
    n = x.shape[0]
    tot = row_sums(x)
    zero = np.flatnonzero(tot <= 0)
    if len(zero):
        raise InputError(path, f"{len(zero)} cell(s) have zero total count (first: row {zero[0]}); "
                               "size factors must be > 0, filter such cells first")
    check_components(k, n, path)
    return tot


def check_components(k: int | None, n: int, path="X") -> None:
    """Raise `InputError` when ``k`` components are more than the ``n`` cells (None: nothing to check)."""
    if k is not None and k > n:
        raise InputError(path, f"k={k} components but only {n} cells")


# --------------------------------------------------------------------------- log-likelihood
def component_loglik(data: CountData, log_mean, log_inv_disp) -> torch.Tensor:
    """``[n, k]`` matrix of ``sum_j log NB(x_ij; s_i mu_kj, r_kj)`` (exact, including ``-lgamma(x+1)``).

    Per nonzero the count-dependent part ``x log(m / (r + m)) + lgamma(x + r) - lgamma(r)`` is evaluated as
    ``-x softplus(log r - log mu - log s) + T[(gene, count) pair]``: one gather of ``log r - log mu``, one
    softplus and one gather of the pair table ``T`` per nonzero and component."""
    k = log_mean.shape[0]
    r = torch.exp(log_inv_disp)
    mu_over_r = torch.exp(log_mean - log_inv_disp)
    out = torch.empty(data.n, k, dtype=data.dtype, device=data.device)
    data.e_steps += 1
    # zero-count part, dense over (distinct size factor, component, gene): -sum_j r log(1 + s mu / r)
    zero = torch.empty(len(data.s_unique), k, dtype=data.dtype, device=data.device)
    step = max(1, data.chunk_elems // max(1, k * data.p))
    for a in range(0, len(data.s_unique), step):
        s = data.s_unique[a:a + step].view(-1, 1, 1)
        zero[a:a + step] = -(r.unsqueeze(0) * torch.log1p(s * mu_over_r.unsqueeze(0))).sum(2)
    # lgamma(x + r) - lgamma(r) per (gene, count) pair and component, [pairs, k]
    table = (data.pair_table(torch.lgamma, log_inv_disp) - torch.lgamma(r)[:, data.pair_gene]).T.contiguous()
    log_r_over_mu = (log_inv_disp - log_mean).T.contiguous()             # [p, k]
    nought = torch.zeros((), dtype=data.dtype, device=data.device)
    for a, b, nz in data.chunks(k):
        dense = zero[data.s_inverse[a:b]]
        rows = data.chunk_rows(a, b)
        cols, x, pair = data.nonzeros(nz, pairs=True)
        v = log_r_over_mu[cols] - data.log_s[a:b][rows].unsqueeze(1)     # log(r / m)
        term = table[pair] - x.unsqueeze(1) * torch.logaddexp(v, nought)
        dense.index_add_(0, rows, term)
        out[a:b] = dense - data.lgamma_x1[a:b].unsqueeze(1)
    return out


def mixture_loglik(comp_ll: torch.Tensor, log_pi: torch.Tensor):
    """Return (total log-likelihood, responsibilities) from component log-likelihoods and log pi."""
    joint = comp_ll + log_pi.unsqueeze(0)
    lse = torch.logsumexp(joint, dim=1, keepdim=True)
    return float(lse.sum()), torch.exp(joint - lse)


# --------------------------------------------------------------------------- M step
class Pairs:
    """The (cell, component) pairs with nonzero responsibility, and the nonzero counts of each pair.

    The M step only needs cells with ``w_ik > 0``; after the first E step responsibilities are often
    exactly 0/1 in float64, so this cuts the dense work from ``n k p`` to about ``n p`` without any
    approximation. Pairs are processed in chunks of ``chunk_elems / p`` pairs; the nonzeros of a chunk's
    pairs are gathered when it is processed (`chunk_nonzeros`), so that memory is per pair, not per nonzero.
    """

    def __init__(self, data: CountData, w: torch.Tensor, min_weight: float = 0.0):
        ii, kk = torch.nonzero(w > min_weight, as_tuple=True)
        self.ii, self.kk, self.w = ii, kk, w[ii, kk]
        indptr = torch.as_tensor(data.indptr, device=data.device)
        self.start = indptr[ii]
        self.cnt = indptr[ii + 1] - self.start
        self.k, self.p, self.data = w.shape[1], data.p, data
        # rows of the zero-count (dense) terms, which depend on a cell only through s_i: (component, s, weight)
        # per pair, or per (component, distinct s) with the weights summed when that makes at most
        # SIZE_GROUPS_MAX_FRACTION of the rows (many cells: far fewer distinct library sizes than cells)
        key = kk * len(data.s_unique) + data.s_inverse[ii]
        groups = torch.unique(key)
        if len(groups) <= SIZE_GROUPS_MAX_FRACTION * len(key):
            wsum = torch.zeros(w.shape[1] * len(data.s_unique), dtype=w.dtype, device=w.device)
            wsum.index_add_(0, key, self.w)
            self.dense_kk = groups // len(data.s_unique)
            self.dense_s = data.s_unique[groups % len(data.s_unique)]
            self.dense_w = wsum[groups]
        else:
            self.dense_kk, self.dense_s, self.dense_w = kk, data.s[ii], self.w

    def chunks(self, dense: bool = False):
        """Yield the pair slices of the chunks (``dense``: of the zero-count rows ``dense_*``)."""
        step = max(1, self.data.chunk_elems // max(1, self.p))
        n = len(self.dense_kk if dense else self.ii)
        for a in range(0, n, step):
            yield slice(a, min(n, a + step))

    def chunk_nonzeros(self, ps: slice):
        """``(pair, gene, count, (gene, count) pair)`` of the nonzeros of the pairs ``ps`` (pair indices are global,
        int64; the last is the index into `CountData.pair_table`)."""
        cnt = self.cnt[ps]
        cum = torch.cumsum(cnt, 0)
        local = torch.repeat_interleave(torch.arange(len(cnt), device=cnt.device), cnt)
        total = int(cum[-1]) if len(cnt) else 0
        nz = self.start[ps][local] + torch.arange(total, device=cnt.device) - (cum - cnt)[local]
        return (local + ps.start, *self.data.nonzeros(nz, pairs=True))

    def nonzeros(self, ps: slice, log_mean, log_inv_disp):
        """``(flat (k, gene) index, flat (k, count pair) index, weight, x, m, r)`` of the nonzeros of the pairs
        ``ps`` (all ``[nnz]``; the second indexes ``CountData.pair_table(...).view(-1)``)."""
        pe, col, x, pair = self.chunk_nonzeros(ps)
        kk = self.kk[pe]
        lr = log_inv_disp[kk, col]
        m = torch.exp(self.data.log_s[self.ii[pe]] + log_mean[kk, col])
        return kk * self.p + col, kk * len(self.data.pair_x) + pair, self.w[pe], x, m, torch.exp(lr)


def _weighted_objective(pairs: Pairs, log_mean, log_inv_disp, genes: torch.Tensor | None = None) -> torch.Tensor:
    """``[k, p]`` weighted NB log-likelihood ``Q_kj = sum_i w_ik log NB(x_ij; s_i mu_kj, r_kj)`` (no lgamma(x+1)).

    With ``genes`` (an index tensor) only those columns are computed (``[k, len(genes)]``), which makes
    the line-search re-evaluations of a few pending (k, gene) entries cheap.
    """
    data = pairs.data
    lg_xr = data.pair_table(torch.lgamma, log_inv_disp)             # [k, pairs]: lgamma(x + r)
    if genes is not None:
        log_mean, log_inv_disp = log_mean[:, genes], log_inv_disp[:, genes]
        pos = torch.full((data.p,), -1, dtype=torch.int64, device=data.device)
        pos[genes] = torch.arange(len(genes), device=data.device)
    k, p = log_mean.shape
    r = torch.exp(log_inv_disp)
    mu_over_r = torch.exp(log_mean - log_inv_disp)
    acc = torch.zeros(k, p, dtype=data.dtype, device=data.device)
    for ps in pairs.chunks(dense=True):
        kk = pairs.dense_kk[ps]
        s = pairs.dense_s[ps].unsqueeze(1)
        acc.index_add_(0, kk, pairs.dense_w[ps].unsqueeze(1) * torch.log1p(s * mu_over_r[kk]))
    q = (-r * acc).contiguous()
    flat = q.view(-1)
    lg_r = torch.lgamma(r)
    for ps in pairs.chunks():
        pe, col, x, pair = pairs.chunk_nonzeros(ps)
        if genes is not None:
            col = pos[col]
            keep = col >= 0
            pe, col, x, pair = pe[keep], col[keep], x[keep], pair[keep]
        kk = pairs.kk[pe]
        lr = log_inv_disp[kk, col]
        lm_s = data.log_s[pairs.ii[pe]] + log_mean[kk, col]          # log m
        log_u = torch.logaddexp(lr, lm_s)
        flat.index_add_(0, kk * p + col,
                        pairs.w[pe] * (x * (lm_s - log_u) + lg_xr[kk, pair] - lg_r[kk, col]))
    return q


def _grad_hess(pairs: Pairs, log_mean, log_inv_disp):
    """Gradient and Hessian of ``Q_kj`` in ``(a, b) = (log mu_kj, log r_kj)``, each ``[k, p]``."""
    data = pairs.data
    k, p = log_mean.shape
    r = torch.exp(log_inv_disp)
    mu = torch.exp(log_mean)
    z = lambda: torch.zeros(k, p, dtype=data.dtype, device=data.device)  # noqa: E731
    s_mu, s_b, s_ru, s_mm = z(), z(), z(), z()
    for ps in pairs.chunks(dense=True):
        kk = pairs.dense_kk[ps]
        wc = pairs.dense_w[ps].unsqueeze(1)
        m = pairs.dense_s[ps].unsqueeze(1) * mu[kk]                 # [c, p]
        u = r[kk] + m
        mu_ = m / u                                                  # m / (r + m)
        ru = 1 - mu_                                                 # r / (r + m)
        s_mu.index_add_(0, kk, wc * mu_)
        s_b.index_add_(0, kk, wc * (torch.log(ru) + mu_))
        s_ru.index_add_(0, kk, wc * (ru * mu_))
        s_mm.index_add_(0, kk, wc * (mu_ * mu_))
        del m, u, mu_, ru
    # zero-count (x = 0) terms; the nonzeros below add f(x) - f(0)
    ga, gb, haa, hab, extra = (t.contiguous() for t in (-r * s_mu, r * s_b, -r * s_ru, -r * s_mm, r * s_mm))
    fga, fgb, fhaa, fhab, fex = (t.view(-1) for t in (ga, gb, haa, hab, extra))
    # digamma / trigamma of x + r once per (component, distinct (gene, count) pair), of r once per (component, gene)
    dg_xr = data.pair_table(torch.digamma, log_inv_disp).view(-1)
    tg_xr = data.pair_table(lambda v: torch.polygamma(1, v), log_inv_disp).view(-1)
    dg_r, tg_r = torch.digamma(r).view(-1), torch.polygamma(1, r).view(-1)
    for ps in pairs.chunks():
        idx, pidx, wn, x, m, rr = pairs.nonzeros(ps, log_mean, log_inv_disp)
        u = rr + m
        fga.index_add_(0, idx, wn * rr * x / u)
        fgb.index_add_(0, idx, wn * rr * (-x / u + dg_xr[pidx] - dg_r[idx]))
        rmx = wn * rr * m * x / (u * u)
        fhaa.index_add_(0, idx, -rmx)
        fhab.index_add_(0, idx, rmx)
        fex.index_add_(0, idx, wn * rr * rr * (x / (u * u) + tg_xr[pidx] - tg_r[idx]))
    hbb = gb + extra
    return ga, gb, haa, hab, hbb


def m_step(data: CountData, w, log_mean, log_inv_disp, steps: int = 3, max_halvings: int = 4,
           max_step: float = 2.0, tol: float = 1e-6, gain_tol: float = 1e-9, min_weight: float = 1e-10):
    """Safeguarded Newton ascent on every ``Q_kj`` at once; returns new ``(log_mean, log_inv_disp)``.

    Safeguards: the 2x2 Hessian is shifted to be negative definite, steps are capped at
    ``max_step`` in each coordinate, parameters are kept inside bounds, and a step is halved up
    to ``max_halvings`` times until ``Q_kj`` does not decrease (else that (k, j) keeps its value).
    Stops early when no parameter moves by more than ``tol`` or gains more than ``gain_tol``.
    Responsibilities below ``min_weight`` are treated as 0 (their cells are skipped for that component).
    """
    pairs = Pairs(data, w, min_weight)
    a = log_mean.clone(memory_format=torch.contiguous_format)
    b = log_inv_disp.clone(memory_format=torch.contiguous_format)
    q = _weighted_objective(pairs, a, b)
    for _ in range(steps):
        ga, gb, haa, hab, hbb = _grad_hess(pairs, a, b)
        scale = haa.abs() + hbb.abs() + 1e-12
        lam_max = 0.5 * (haa + hbb) + torch.sqrt(0.25 * (haa - hbb) ** 2 + hab ** 2)
        shift = torch.clamp(lam_max + 1e-6 * scale, min=0)
        haa_s, hbb_s = haa - shift, hbb - shift
        det = haa_s * hbb_s - hab * hab
        # delta = -H^{-1} g for the negative definite (shifted) Hessian
        da = -(hbb_s * ga - hab * gb) / det
        db = -(-hab * ga + haa_s * gb) / det
        big = torch.clamp(torch.maximum(da.abs(), db.abs()) / max_step, min=1.0)
        da, db = da / big, db / big
        # entries already at their optimum (or pinned at a bound) need no trial: the step is negligible
        # or the predicted gain g.delta / 2 is below gain_tol (log-likelihood units)
        ta = torch.clamp(a + da, *LOG_MEAN_BOUNDS) - a
        tb = torch.clamp(b + db, *LOG_INV_DISP_BOUNDS) - b
        done = (torch.maximum(ta.abs(), tb.abs()) <= tol) | (0.5 * (ga * ta + gb * tb) <= gain_tol)
        if bool(done.all()):
            break
        t = 1.0
        a_new, b_new = a.clone(), b.clone()
        for _h in range(max_halvings + 1):
            genes = torch.nonzero((~done).any(0), as_tuple=True)[0]
            sub = (slice(None), genes)
            ca = torch.where(done[sub], a[sub], torch.clamp(a[sub] + t * da[sub], *LOG_MEAN_BOUNDS))
            cb = torch.where(done[sub], b[sub], torch.clamp(b[sub] + t * db[sub], *LOG_INV_DISP_BOUNDS))
            fa, fb = a.clone(), b.clone()
            fa[sub], fb[sub] = ca, cb
            qc = _weighted_objective(pairs, fa, fb, genes=genes)
            ok = (qc >= q[sub]) & ~done[sub] & torch.isfinite(qc)
            a_new[sub] = torch.where(ok, ca, a_new[sub])
            b_new[sub] = torch.where(ok, cb, b_new[sub])
            q[sub] = torch.where(ok, qc, q[sub])
            d = done[sub]
            d |= ok
            done[sub] = d
            if bool(done.all()):
                break
            t *= 0.5
        a, b = a_new, b_new
    return a, b


def moment_init(data: CountData, w):
    """Weighted moment estimates ``(log_mean, log_inv_disp)`` for responsibilities ``w [n, k]``."""
    wt = w.T                                                         # [k, n]
    k = w.shape[1]
    # per gene and component: sum_i w x, sum_i w s x, sum_i w x^2 (over the nonzeros, a chunk of cells at a time)
    acc = torch.zeros(3, data.p, k, dtype=w.dtype, device=w.device)
    for a, b, nz in data.chunks(k):
        rows = data.chunk_rows(a, b)
        cols, x = data.nonzeros(nz)
        wr, x = w[a:b][rows], x.unsqueeze(1)
        acc[0].index_add_(0, cols, wr * x)
        acc[1].index_add_(0, cols, wr * (x * data.s[a:b][rows].unsqueeze(1)))
        acc[2].index_add_(0, cols, wr * x ** 2)
    wx, wsx, wxx = acc.transpose(1, 2)                               # each [k, p]
    ws = (wt @ data.s).unsqueeze(1)                                  # [k, 1]
    ws2 = (wt @ data.s ** 2).unsqueeze(1)
    mu = (wx / ws.clamp_min(1e-12)).clamp_min(math.exp(LOG_MEAN_BOUNDS[0]))
    # E[(x - s mu)^2 - s mu] = phi sum w s^2 mu^2
    excess = wxx - 2 * mu * wsx + mu ** 2 * ws2 - mu * ws
    phi = (excess / (mu ** 2 * ws2).clamp_min(1e-30)).clamp(math.exp(-4), math.exp(4))
    log_mean = torch.log(mu).clamp(*LOG_MEAN_BOUNDS)
    return log_mean.contiguous(), (-torch.log(phi)).contiguous()


# --------------------------------------------------------------------------- batch EM
@dataclass
class NBMixFit:
    """Result of a fit: parameters, responsibilities, the log-likelihood trace of the kept restart, and one
    record per restart (``restarts``) with its trace rows (``rounds``) and hard labels (``restart_labels``)."""
    log_mean: np.ndarray
    log_inv_disp: np.ndarray
    pi: np.ndarray
    resp: np.ndarray
    trace: list = field(default_factory=list)
    loglik: float = float("nan")
    n_iter: int = 0
    converged: bool = False
    init: str = ""
    rep: int = 0
    seconds: float = 0.0
    restarts: list = field(default_factory=list)
    rounds: list = field(default_factory=list)
    restart_labels: list = field(default_factory=list)
    full_e_steps: int = 0
    restart_cells: int = 0

    @property
    def labels(self) -> np.ndarray:
        """Hard assignments (argmax responsibility)."""
        return self.resp.argmax(axis=1)

    @property
    def restart_rounds(self) -> int:
        """EM rounds of all restarts together (on the restarts' cells: all, or the large-data subsample)."""
        return int(sum(r["n_iter"] for r in self.restarts))

    @property
    def n_at_best(self) -> int:
        """How many restarts reached the best log-likelihood (within the fit's ``best_tol``)."""
        return int(sum(r["at_best"] for r in self.restarts))

    @property
    def n_screened_out(self) -> int:
        """How many restarts the screen stopped early (`RestartScreen`)."""
        return int(sum(r["screened_out"] for r in self.restarts))


@dataclass
class StopRule:
    """When EM stops: the mean per-cell log-likelihood change between two rounds is at most ``tol`` and the mean
    over cells of each cell's largest responsibility change is at most ``resp_tol`` (both means over cells, so
    independent of the number of cells), or after ``max_iters`` rounds."""
    max_iters: int
    tol: float
    resp_tol: float

    def done(self, ll_change_per_cell: float, resp_change: float) -> bool:
        """Whether a round with these changes (``resp_change``: the mean per-cell largest one) ends the EM."""
        return abs(ll_change_per_cell) <= self.tol and resp_change <= self.resp_tol


@dataclass
class MStepCells:
    """The cells of each M step of an EM whose E steps cover all cells: ``cells`` cells drawn at random for
    every round (round ``t`` with the seed ``(seed, t)``), or all cells when there are no more than ``cells``.

    At a million cells the M step's Newton passes over every nonzero cost several times the E step; the
    ``k x p`` parameters are estimated about as well from 100,000 cells. The log-likelihood of all cells is
    then no longer guaranteed to rise every round (each M step maximises a different sample's objective)."""
    cells: int
    seed: int

    def samples(self, n: int) -> bool:
        """Whether the M steps of an EM on ``n`` cells use samples (fewer cells than ``n``)."""
        return self.cells < n

    def of_round(self, data: CountData, w: torch.Tensor, it: int):
        """``(counts, responsibilities)`` of round ``it``'s M step: a fresh sample of the cells, or all of them."""
        if not self.samples(data.n):
            return data, w
        rows = subsample_rows(data.n, w.shape[1], self.cells / data.n, (self.seed, it))
        sub = CountData(data.csr[rows], device=data.device, dtype=data.dtype, chunk_elems=data.chunk_elems)
        return sub, w[torch.as_tensor(rows, device=w.device)]


class EMRun:
    """One EM run from responsibilities ``z0`` that can pause after some rounds and go on later (restart
    screening): `advance` runs rounds up to a total, `result` gives ``(log_mean, log_inv_disp, pi, resp, rounds,
    converged)``, ``rounds`` one dict per round (log-likelihood, its change per cell, the mean over cells of each
    cell's largest responsibility change and the largest over all cells). A run paused and advanced again gives the
    same numbers as one run straight through.

    With ``m_cells`` each M step (and the moment start) uses that round's sample of the cells (`MStepCells`); when
    that is fewer than all cells the EM stops as soon as the mean responsibility change is at most ``stop.resp_tol``
    (the log-likelihood then changes by the samples' noise, not only by progress)."""

    def __init__(self, data: CountData, z0: np.ndarray, stop: StopRule, newton_steps: int,
                 first_newton_steps: int, log_every: int, tag: str, m_cells: MStepCells | None = None):
        self.data, self.stop, self.tag, self.m_cells = data, stop, tag, m_cells
        self.newton_steps, self.first_newton_steps, self.log_every = newton_steps, first_newton_steps, log_every
        self.w = torch.as_tensor(z0, dtype=data.dtype, device=data.device)
        # with sampled M steps the log-likelihood moves by the samples' noise every round: stop on responsibilities
        self.sampled = m_cells is not None and m_cells.samples(data.n)
        self.rounds, self.converged, self.seconds = [], False, 0.0
        self.log_mean = self.log_inv_disp = None

    @property
    def done(self) -> bool:
        """Whether the run has converged or used all ``stop.max_iters`` rounds."""
        return self.converged or len(self.rounds) >= self.stop.max_iters

    @property
    def loglik(self) -> float:
        """Log-likelihood after the last round."""
        return self.rounds[-1]["loglik"]

    def advance(self, total_rounds: int) -> "EMRun":
        """Run rounds until ``total_rounds`` (at most ``stop.max_iters``) have run or the run has converged."""
        data, stop, t0 = self.data, self.stop, time.time()
        while not self.done and len(self.rounds) < total_rounds:
            it = len(self.rounds)
            m_data, m_w = (data, self.w) if self.m_cells is None else self.m_cells.of_round(data, self.w, it)
            if it == 0:
                self.log_mean, self.log_inv_disp = moment_init(m_data, m_w)
            self.log_mean, self.log_inv_disp = m_step(
                m_data, m_w, self.log_mean, self.log_inv_disp,
                steps=self.first_newton_steps if it == 0 else self.newton_steps)
            del m_data, m_w
            pi = self.w.mean(0).clamp_min(1e-300)
            pi = pi / pi.sum()
            ll, w_new = mixture_loglik(component_loglik(data, self.log_mean, self.log_inv_disp), torch.log(pi))
            moved = (w_new - self.w).abs().amax(1)  # each cell's largest responsibility change
            dresp, dresp_max = float(moved.mean()), float(moved.max())
            self.w = w_new
            dll = float("nan") if it == 0 else (ll - self.rounds[-1]["loglik"]) / data.n
            self.rounds.append({"round": it + 1, "loglik": ll, "loglik_change_per_cell": dll,
                                "mean_resp_change": dresp, "max_resp_change": dresp_max})
            if self.log_every and (it % self.log_every == 0 or it < 3):
                el = self.seconds + time.time() - t0
                LOG.info("%s EM round %d/%d: log-likelihood %.6g (change per cell %.3g, responsibility change mean "
                         "%.3g, max %.3g; %.2f s, %.2f rounds/s, ETA at most %.0f s)", self.tag, it + 1,
                         stop.max_iters, ll, dll, dresp, dresp_max, el, (it + 1) / max(el, 1e-9),
                         el / (it + 1) * (stop.max_iters - it - 1))
            if it > 0 and (dresp <= stop.resp_tol if self.sampled else stop.done(dll, dresp)):
                self.converged = True
        self.seconds += time.time() - t0
        return self

    def result(self):
        """``(log_mean, log_inv_disp, pi, resp, rounds, converged)`` as numpy arrays (the rounds as a list)."""
        return (self.log_mean.cpu().numpy(), self.log_inv_disp.cpu().numpy(), self.w.mean(0).cpu().numpy(),
                self.w.cpu().numpy(), self.rounds, self.converged)


def _em_once(data: CountData, z0: np.ndarray, stop: StopRule, newton_steps: int, first_newton_steps: int,
             log_every: int, tag: str, m_cells: MStepCells | None = None):
    """One `EMRun` from ``z0`` to its end: ``(log_mean, log_inv_disp, pi, resp, rounds, converged)``."""
    return EMRun(data, z0, stop, newton_steps, first_newton_steps, log_every, tag, m_cells) \
        .advance(stop.max_iters).result()


def start_kinds(init: str, restarts, nrep: int) -> list[str]:
    """The start of each of ``nrep`` restarts: ``init`` first, then ``restarts`` cycled (``init`` again when
    ``restarts`` is empty)."""
    later = list(restarts) or [init]
    return [init] + [later[(r - 1) % len(later)] for r in range(1, nrep)]


def _subsample_start(data: CountData, k: int, seed: int, fraction: float, stop: StopRule, newton_steps: int,
                     first_newton_steps: int, log_every: int, tag: str, chunk_elems: int) -> np.ndarray:
    """Responsibilities of all cells (one E step) under the EM fit of a random subsample of the cells started
    from random responsibilities."""
    rows = subsample_rows(data.n, k, fraction, seed)
    sub = CountData(data.csr[rows], device=data.device, dtype=data.dtype, chunk_elems=chunk_elems)
    lm, lr, pi, _, rounds, _ = _em_once(sub, random_responsibilities(len(rows), k, seed), stop, newton_steps,
                                        first_newton_steps, log_every, f"{tag} subsample")
    LOG.info("%s: subsample of %d cells fitted in %d rounds", tag, len(rows), len(rounds))
    return _params_e_step(data, lm, lr, pi)


def _mark_best(restarts: list, labels: list, best: int, best_tol: float) -> None:
    """Add ``at_best`` (mean per-cell log-likelihood within ``best_tol`` of the best restart's) and
    ``ari_vs_best`` (adjusted Rand index of the restart's partition with the best one's) to each record."""
    from ..core.metrics import ari
    top = restarts[best]["loglik_per_cell"]
    for rec, lab in zip(restarts, labels):
        rec["at_best"] = bool(top - rec["loglik_per_cell"] <= best_tol)
        rec["ari_vs_best"] = float(ari(labels[best], lab))


@dataclass
class RestartScreen:
    """Restart screening: with more than one restart every restart first runs at most ``rounds`` EM rounds; only
    those whose mean per-cell log-likelihood is then within ``margin`` of the leading restart's go on to the end
    (`StopRule`); the others stop there, recorded as ``screened_out``. ``rounds`` 0 runs every restart to its end.

    Exact EM never lowers the log-likelihood, so a screened-out restart cannot end above the leader: screening
    loses the best restart only when one more than ``margin`` behind after ``rounds`` rounds would overtake it."""
    rounds: int
    margin: float

    def applies(self, nrep: int, max_iters: int) -> bool:
        """Whether screening can stop any of ``nrep`` restarts of at most ``max_iters`` rounds."""
        return nrep > 1 and 0 < self.rounds < max_iters

    def goes_on(self, lead_per_cell: float, loglik_per_cell: float) -> bool:
        """Whether a paused restart at ``loglik_per_cell`` is within the margin of the leader's ``lead_per_cell``."""
        return lead_per_cell - loglik_per_cell <= self.margin


def _run_restarts(data: CountData, k: int, kinds: list, seed: int, stop: StopRule, screen: RestartScreen,
                  subsample_fraction: float, newton_steps: int, first_newton_steps: int, n_pcs: int,
                  leiden_resolution: float, init_resp, chunk_elems: int, log_every: int, tag_cells: str = ""):
    """EM from each start of ``kinds`` on ``data``, screened by ``screen``:
    ``(best (ll, rep, _em_once result), records, labels, rounds)``. A restart's state is released as soon as it
    is recorded (all but the best one's), so only the restarts paused at the screen are held at once."""
    nrep = len(kinds)
    starts = Starts(data.csr, k, n_pcs, leiden_resolution, seed)
    screening = screen.applies(nrep, stop.max_iters)
    records, labels, traces = [None] * nrep, [None] * nrep, [None] * nrep
    best = None

    def record(rep, kind, run, start_s, tag, screened_out=False):
        nonlocal best
        res = run.result()
        ll = run.loglik
        records[rep] = {"rep": rep, "init": kind, "seed": seed + rep, "loglik": ll, "loglik_per_cell": ll / data.n,
                        "n_iter": len(res[4]), "converged": res[5], "screened_out": screened_out,
                        "seconds": start_s + run.seconds, "cells": data.n}
        labels[rep] = res[3].argmax(1)
        traces[rep] = [{"restart": rep, "init": kind, **row} for row in res[4]]
        LOG.info("%s: log-likelihood %.6g (%.6g per cell) after %d rounds%s, %.2f s", tag, ll, ll / data.n,
                 len(res[4]), " (screened out)" if screened_out else "" if res[5] else " (not converged)",
                 records[rep]["seconds"])
        if best is None or ll > best[0] or (ll == best[0] and rep < best[1]):  # ties: the first restart
            best = (ll, rep, res)

    paused = []
    for rep, kind in enumerate(kinds):
        t0 = time.time()
        tag = f"[restart {rep + 1}/{nrep}: {kind}, seed {seed + rep}{tag_cells}]"
        if kind == "given":
            z0 = np.asarray(init_resp, dtype=float)
            if z0.shape != (data.n, k):
                raise ScfactorError(f"init_resp has shape {z0.shape}, expected {(data.n, k)}")
        elif kind == "subsample":
            z0 = _subsample_start(data, k, seed + rep, subsample_fraction, stop, newton_steps,
                                  first_newton_steps, log_every, tag, chunk_elems)
        else:
            z0 = starts.responsibilities(kind, seed + rep)
        start_s = time.time() - t0
        run = EMRun(data, z0, stop, newton_steps, first_newton_steps, log_every, tag)
        run.advance(screen.rounds if screening else stop.max_iters)
        if run.done:
            record(rep, kind, run, start_s, tag)
        else:
            paused.append((rep, kind, run, start_s, tag))
    if paused:
        runs = [p[2] for p in paused]
        lead = max([r.loglik for r in runs] + [r["loglik"] for r in records if r is not None]) / data.n
        go_on = [screen.goes_on(lead, r.loglik / data.n) for r in runs]
        LOG.info("screen after %d rounds: leading log-likelihood %.6g per cell; restarts %s go on, %s stop "
                 "(more than %g per cell behind)", screen.rounds, lead,
                 [p[0] + 1 for p, g in zip(paused, go_on) if g] or "none",
                 [p[0] + 1 for p, g in zip(paused, go_on) if not g] or "none", screen.margin)
        for (rep, kind, run, start_s, tag), g in zip(paused, go_on):
            if g:
                run.advance(stop.max_iters)
            record(rep, kind, run, start_s, tag, screened_out=not g)
    return best, records, labels, [row for t in traces for row in t]


def _params_e_step(data: CountData, lm, lr, pi) -> np.ndarray:
    """Responsibilities ``[n, k]`` of all cells of ``data`` under the parameters ``(lm, lr, pi)`` (one E step)."""
    t = lambda v: torch.as_tensor(v, dtype=data.dtype, device=data.device)  # noqa: E731
    _, w = mixture_loglik(component_loglik(data, t(lm), t(lr)), torch.log(t(pi).clamp_min(1e-300)))
    return w.cpu().numpy()


def fit_em(x, k: int, *, init: str, restarts, nrep: int, seed: int, max_iters: int, tol: float, resp_tol: float,
           screen_rounds: int, screen_margin: float, best_tol: float, subsample_fraction: float, newton_steps: int, first_newton_steps: int, n_pcs: int,
           leiden_resolution: float, dtype, restart_subsample_above: int, restart_subsample_cells: int,
           full_max_iters: int, full_m_step_cells: int, device="cpu", init_resp: np.ndarray | None = None,
           chunk_elems: int = 4_000_000, log_every: int = 10, path="X") -> NBMixFit:
    """Batch EM for the NB mixture with ``nrep`` restarts; keeps the restart with the highest log-likelihood.

    Restart ``r`` (seed ``seed + r``) starts from `start_kinds` ``(init, restarts, nrep)[r]``
    (`scfactor.nbmix.starts`); ``init_resp`` (``[n, k]``) replaces the first start. Each restart stops by
    `StopRule` (``max_iters``, ``tol``, ``resp_tol``), unless `RestartScreen` (``screen_rounds``,
    ``screen_margin``) stops it early because it lags the leading restart. The records in ``NBMixFit.restarts`` say which restarts
    reached the best log-likelihood (``best_tol``, per cell) and how their partitions agree with the best one.

    With more than ``restart_subsample_above`` cells (and no ``init_resp``) the restarts run on a random
    subsample of ``restart_subsample_cells`` cells (drawn with ``seed``); the best of them gives one E step on
    all cells and one EM on all cells from there (its first M step from the moment estimates of those
    responsibilities, as every restart's), stopped after at most ``full_max_iters`` rounds (its rounds are restart
    ``nrep`` in ``rounds``, ``rep`` = ``nrep``). Each M step of that EM (and its moment start) uses a fresh random
    sample of ``full_m_step_cells`` cells (`MStepCells`; all cells when there are no more), its E steps all cells.
    ``NBMixFit.full_e_steps`` counts the E steps over all cells either way.

    The settings come from the step's options (`scfactor.nbmix.pipeline.em_settings`); ``dtype`` is a
    torch dtype."""
    if k < 1:
        raise ScfactorError(f"k must be >= 1 (got {k})")
    data = CountData(x, device=device, dtype=dtype, chunk_elems=chunk_elems, path=path)  # validates the counts
    check_components(k, data.n, path)
    stop = StopRule(max_iters, tol, resp_tol)
    kinds = start_kinds(init, restarts, nrep)
    if init_resp is not None:
        kinds[0] = "given"
    sub_mode = init_resp is None and data.n > restart_subsample_above and restart_subsample_cells < data.n
    t_all = time.time()
    common = dict(seed=seed, stop=stop, screen=RestartScreen(screen_rounds, screen_margin),
                  subsample_fraction=subsample_fraction, newton_steps=newton_steps,
                  first_newton_steps=first_newton_steps, n_pcs=n_pcs, leiden_resolution=leiden_resolution,
                  chunk_elems=chunk_elems, log_every=log_every)
    if not sub_mode:
        best, records, labels, rounds_all = _run_restarts(data, k, kinds, init_resp=init_resp, **common)
        ll, rep, (lm, lr, pi, w, rounds, conv) = best
        _mark_best(records, labels, rep, best_tol)
        kept = kinds[rep]
    else:
        rows = subsample_rows(data.n, k, restart_subsample_cells / data.n, seed)
        LOG.info("%d cells > %d: %d restarts on a subsample of %d cells, then one EM on all cells", data.n,
                 restart_subsample_above, nrep, len(rows))
        sub = CountData(data.csr[rows], device=data.device, dtype=data.dtype, chunk_elems=chunk_elems, path=path)
        best, records, labels, rounds_all = _run_restarts(sub, k, kinds, init_resp=None,
                                                          tag_cells=f", {len(rows)} cells", **common)
        _, sub_rep, (s_lm, s_lr, s_pi, _, _, _) = best
        _mark_best(records, labels, sub_rep, best_tol)
        del sub, best
        rep, kept = nrep, f"{kinds[sub_rep]} (subsample)"
        tag = f"[all {data.n} cells from restart {sub_rep + 1} ({kinds[sub_rep]})]"
        full_stop = StopRule(min(max_iters, full_max_iters), tol, resp_tol)
        m_cells = MStepCells(full_m_step_cells, seed)
        if m_cells.samples(data.n):
            LOG.info("%s: E steps on all cells, each M step on a fresh sample of %d cells", tag, full_m_step_cells)
        lm, lr, pi, w, rounds, conv = _em_once(data, _params_e_step(data, s_lm, s_lr, s_pi), full_stop,
                                               newton_steps, first_newton_steps, log_every and 1, tag, m_cells)
        ll = rounds[-1]["loglik"]
        rounds_all += [{"restart": rep, "init": kept, **row} for row in rounds]
        LOG.info("%s: log-likelihood %.6g (%.6g per cell) after %d rounds%s", tag, ll, ll / data.n, len(rounds),
                 "" if conv else " (not converged)")
    fit = NBMixFit(log_mean=lm, log_inv_disp=lr, pi=pi, resp=w, trace=[r["loglik"] for r in rounds], loglik=ll,
                   n_iter=len(rounds), converged=conv, init=kept, rep=rep, seconds=time.time() - t_all,
                   restarts=records, rounds=rounds_all, restart_labels=labels, full_e_steps=data.e_steps,
                   restart_cells=records[0]["cells"])
    LOG.info("best of %d restarts: %s, log-likelihood %.6g; %d restart(s) within %.3g per cell of the best restart; "
             "%d E steps over all %d cells", nrep, kept, ll, fit.n_at_best, best_tol, data.e_steps, data.n)
    return fit

def predict_proba(x, log_mean, log_inv_disp, pi, device="cpu", dtype=torch.float64, path="X"):
    """E step for (new) cells under fixed parameters: ``(responsibilities [n, k], log-likelihood)``."""
    data = CountData(x, device=device, dtype=dtype, path=path)
    if data.p != np.shape(log_mean)[1]:
        raise InputError(path, f"has {data.p} genes but the model has {np.shape(log_mean)[1]}")
    t = lambda v: torch.as_tensor(np.asarray(v), dtype=dtype, device=data.device)  # noqa: E731
    ll, w = mixture_loglik(component_loglik(data, t(log_mean), t(log_inv_disp)), torch.log(t(pi).clamp_min(1e-300)))
    return w.cpu().numpy(), ll


def fit_labels(x, labels, device="cpu", dtype=torch.float64, newton_steps: int = 50):
    """NB and Poisson maximum-likelihood per (label, gene) given hard labels.

    Returns ``(names, nb_ll [L, p], pois_ll [L, p], log_mean [L, p], log_inv_disp [L, p])`` where
    the log-likelihoods are summed over the cells of each label (the notebook's Poisson-vs-NB figure).
    """
    names, idx = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    onehot = np.eye(len(names))[idx]
    data = CountData(x, device=device, dtype=dtype)
    w = torch.as_tensor(onehot, dtype=dtype, device=data.device)
    lm, lr = moment_init(data, w)
    lm, lr = m_step(data, w, lm, lr, steps=newton_steps)
    nb = _weighted_objective(Pairs(data, w), lm, lr)
    # Poisson MLE mu = sum x / sum s; log-lik sum_i x log(s mu) - s mu (lgamma(x+1) dropped in both)
    xs = sp.csr_matrix(x, dtype=np.float64)
    s = np.asarray(xs.sum(1)).ravel()
    wx = np.asarray((sp.csr_matrix(onehot.T) @ xs).todense())
    ws = onehot.T @ s
    mu = wx / ws[:, None]
    logmu = np.log(np.where(mu > 0, mu, 1.0))
    coo = xs.tocoo()
    pois = -ws[:, None] * mu
    contrib = coo.data * (np.log(s[coo.row]) + logmu[idx[coo.row], coo.col])
    np.add.at(pois, (idx[coo.row], coo.col), contrib)
    # subtract lgamma(x+1) from both so both are exact log-likelihoods
    from scipy.special import gammaln
    lgx = np.zeros_like(pois)
    np.add.at(lgx, (idx[coo.row], coo.col), gammaln(coo.data + 1))
    return names, nb.cpu().numpy() - lgx, pois - lgx, lm.cpu().numpy(), lr.cpu().numpy()


# --------------------------------------------------------------------------- amortised inference
class AmortizedNBMix(torch.nn.Module):
    """Encoder ``log1p -> Linear(p, hidden) -> ReLU -> Linear(hidden, k) -> softmax`` plus NB components."""

    def __init__(self, p: int, k: int, hidden: int, log_mean=None, log_inv_disp=None, pi=None):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(p, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, k))
        lm = torch.randn(k, p) - 8.0 if log_mean is None else torch.as_tensor(np.asarray(log_mean), dtype=torch.float32)
        lr = torch.zeros(k, p) if log_inv_disp is None else torch.as_tensor(np.asarray(log_inv_disp), dtype=torch.float32)
        lp = torch.zeros(k) if pi is None else torch.log(torch.as_tensor(np.asarray(pi), dtype=torch.float32).clamp_min(1e-8))
        self.log_mean = torch.nn.Parameter(lm.float())
        self.log_inv_disp = torch.nn.Parameter(lr.float())
        self.logit_pi = torch.nn.Parameter(lp.float())

    def forward(self, x):
        """Posterior assignment probabilities ``q(z | x)`` for a dense count batch ``[b, p]``."""
        return torch.softmax(self.encoder(torch.log1p(x)), dim=1)

    def elbo(self, x, s):
        """Per-cell ELBO ``sum_k q_k (log pi_k - log q_k + log NB(x; s mu_k, r_k))`` of a dense batch."""
        logits = self.encoder(torch.log1p(x))
        q = torch.softmax(logits, 1)
        log_q = torch.log_softmax(logits, 1)
        lm = self.log_mean.clamp(*LOG_MEAN_BOUNDS)
        lr = self.log_inv_disp.clamp(*LOG_INV_DISP_BOUNDS)
        r = torch.exp(lr).unsqueeze(0)
        m = s.view(-1, 1, 1) * torch.exp(lm).unsqueeze(0)
        xx = x.unsqueeze(1)
        log_u = torch.logaddexp(lr.unsqueeze(0), torch.log(m))
        ll = (xx * (torch.log(m) - log_u) + r * (lr.unsqueeze(0) - log_u) + torch.lgamma(xx + r)
              - torch.lgamma(r) - torch.lgamma(xx + 1)).sum(2)
        log_pi = torch.log_softmax(self.logit_pi, 0)
        return (q * (log_pi.unsqueeze(0) - log_q + ll)).sum(1)

    @torch.no_grad()
    def assign(self, x, batch_size: int = 1024, device="cpu") -> np.ndarray:
        """Responsibilities ``[n, k]`` of (new) cells from the encoder alone (no refitting)."""
        x = sp.csr_matrix(x)
        out = []
        for a in range(0, x.shape[0], batch_size):
            xb = torch.as_tensor(x[a:a + batch_size].toarray(), dtype=torch.float32, device=device)
            out.append(self.forward(xb).cpu().numpy())
        return np.vstack(out) if out else np.zeros((0, self.logit_pi.shape[0]))


def fit_amortized(x, k: int, *, epochs: int, batch_size: int, lr: float, hidden: int, seed: int,
                  init_subsample: int, em_kwargs: dict, device="cpu", freeze_epochs: int | None = None,
                  log_every: int = 1, path="X"):
    """Train `AmortizedNBMix` on the ELBO with minibatches streamed from the sparse matrix.

    When ``init_subsample > 0`` the components start from `fit_em` on a seeded subsample of that many
    cells (``em_kwargs``: the `fit_em` settings but ``seed``) and stay frozen for the first ``freeze_epochs`` epochs (default: a
    quarter of them, at least 1) while the encoder learns the posterior; otherwise everything trains from
    the start. Returns ``(model, NBMixFit)`` with the encoder's responsibilities
    for all cells and the per-epoch mean ELBO per cell as the trace.
    """
    validate_counts_matrix(x, path, k=k)
    x = sp.csr_matrix(x, dtype=np.float32)
    n, p = x.shape
    dev = torch.device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    init = dict(log_mean=None, log_inv_disp=None, pi=None)
    t_all = time.time()
    if init_subsample > 0:
        sub = np.sort(rng.choice(n, size=min(n, init_subsample), replace=False))
        em = fit_em(x[sub], k, seed=seed, device=dev, path=path, **em_kwargs)
        init = dict(log_mean=em.log_mean, log_inv_disp=em.log_inv_disp, pi=em.pi)
        LOG.info("amortised: components initialised from batch EM on %d cells (log-lik %.6g)", len(sub), em.loglik)
    model = AmortizedNBMix(p, k, hidden=hidden, **init).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    s_all = np.asarray(x.sum(1), dtype=np.float32).ravel()
    trace = []
    t0 = time.time()
    if freeze_epochs is None:
        freeze_epochs = max(1, epochs // 4) if init_subsample > 0 else 0
    components = (model.log_mean, model.log_inv_disp, model.logit_pi)
    for ep in range(epochs):
        for par in components:
            par.requires_grad_(ep >= freeze_epochs)
        order = rng.permutation(n)
        tot = 0.0
        for a in range(0, n, batch_size):
            rows = np.sort(order[a:a + batch_size])
            xb = torch.as_tensor(x[rows].toarray(), device=dev)
            sb = torch.as_tensor(s_all[rows], device=dev)
            opt.zero_grad()
            elbo = model.elbo(xb, sb)
            loss = -elbo.mean()
            if not torch.isfinite(loss):
                raise ScfactorError(f"amortised inference diverged at epoch {ep + 1} (non-finite ELBO); lower the learning rate")
            loss.backward()
            opt.step()
            tot += float(elbo.detach().sum())
        trace.append(tot / n)
        if log_every and (ep % log_every == 0 or ep == epochs - 1):
            el = time.time() - t0
            LOG.info("amortised epoch %d/%d: ELBO per cell %.6g, %.0f cells/s, ETA %.0f s", ep + 1, epochs,
                     trace[-1], n * (ep + 1) / max(el, 1e-9), el / (ep + 1) * (epochs - ep - 1))
    model.eval()
    resp = model.assign(x, device=dev)
    with torch.no_grad():
        pi = torch.softmax(model.logit_pi, 0).cpu().numpy()
        lm = model.log_mean.clamp(*LOG_MEAN_BOUNDS).cpu().numpy().astype(np.float64)
        lr_ = model.log_inv_disp.clamp(*LOG_INV_DISP_BOUNDS).cpu().numpy().astype(np.float64)
    _, ll = predict_proba(x, lm, lr_, pi, device=dev, path=path)
    fit = NBMixFit(log_mean=lm, log_inv_disp=lr_, pi=pi, resp=resp.astype(np.float64), trace=trace, loglik=ll,
                   n_iter=epochs, converged=True, init="em-subsample" if init_subsample > 0 else "random",
                   seconds=time.time() - t_all)
    return model, fit
