"""Multilayer NMF on minibatches of cells: the fit of `scfactor.layers.model` for data too large to hold dense.

The cells are read chunk by chunk from a row source (a backed ``.h5ad`` or an in-memory matrix, see
`scfactor.layers.stream`); nothing of size cells x genes is ever held, only one chunk of ``batch_size`` cells.

- **Chunks.** The cells are cut into ``16 * n_chunks`` contiguous slabs (fewer on small data: slabs of at
  least 32 cells); a seeded permutation deals 16 slabs to each chunk (so a chunk mixes cells from all over a
  file sorted by cell type, and is read as 16 contiguous row ranges). The chunks are fixed; each epoch visits
  them all once, in a seeded order.
- **Cell factors** (``theta1``, cells x k1) are, as in online NMF / online iNMF, solved per chunk for the
  gene-side loadings at hand (``theta2 .. thetaL S_L``, held fixed): ``cell_iters`` Poisson multiplicative
  updates (poisson) or HALS sweeps (nnls), warm-started from the rows stored at the chunk's last visit.
- **Shared factors** (``theta2 .. thetaL``, small) take one Adam step per chunk, with the gradient of the
  chunk's loss through the gene-side solves as in the full-batch fit.
- **Gene factors.** ``S1`` (k1 x genes) is the solution of the same non-negative regression of ``X`` on
  ``theta1`` as in the full-batch fit, computed from *sufficient statistics summed over the chunks*
  (incremental EM, Neal & Hinton 1998): each chunk's statistics are stored and replaced when the chunk is
  visited again - ``sum_c theta1 * (X / theta1 S1) S1`` and the column sums of ``theta1`` (poisson: the
  multiplicative update is the EM step of the Poisson factor model), or ``theta1^T theta1`` and
  ``theta1^T X`` (nnls); the deeper ``S_l`` (k_l x genes, no cell dimension) are solved exactly as in the
  full-batch fit.

Checkpoints: with ``checkpoint_path`` the whole state (``theta1``, the shared factors and their Adam state, the
``S_l``, the stored chunk statistics, the loss trace) is saved after every epoch (`scfactor.core.checkpoint`);
its fingerprint covers the matrix (a digest of every row range read by the first streaming pass) and every
setting. A rerun with the same fingerprint resumes after the last saved epoch ("resuming from epoch N"): the
chunk order of the epochs done is replayed from the seed, so the result is that of an uninterrupted run, bit
for bit.

Memory: the per-cell factors (``k1`` numbers per cell), the stored statistics (``k1 (genes + 1)`` numbers
per chunk, i.e. ``k1 genes / batch_size`` per cell) and one chunk (a few ``batch_size x genes`` arrays).
Deterministic for a seed (chunks, their order and the start are seeded).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time

import numpy as np
import torch

from ..core import checkpoint
from ..core.log import LOG, Progress
from ..core.nnls import hals_sweep
from .model import (_EPS, SOLVERS, LayeredNMFResult, _loss, _mu_poisson, _mu_step, _solve_on_support, descend,
                    reconstruct, record, validate_layers)

#: contiguous slabs dealt to each chunk (mixing of a sorted file vs. number of reads)
SLABS_PER_CHUNK = 16
#: fewest cells per slab (fewer slabs per chunk on small data: one read per slab)
MIN_SLAB = 32


class AllZero(ValueError):
    """The matrix has no non-zero value (nothing to factorise)."""


def chunk_slabs(n: int, batch_size: int, seed: int) -> list[list[tuple[int, int]]]:
    """Fixed chunks of about ``batch_size`` cells: lists of ``(start, stop)`` row ranges, sorted, dealt by a
    seeded permutation of ``SLABS_PER_CHUNK * n_chunks`` contiguous slabs (of at least ``MIN_SLAB`` cells, and
    at least one slab per chunk)."""
    n_chunks = max(1, math.ceil(n / batch_size))
    n_slabs = max(n_chunks, min(SLABS_PER_CHUNK * n_chunks, n // MIN_SLAB))
    bounds = np.linspace(0, n, n_slabs + 1).astype(np.int64)
    perm = np.random.default_rng(seed).permutation(n_slabs)
    return [sorted((int(bounds[s]), int(bounds[s + 1])) for s in part) for part in np.array_split(perm, n_chunks)]


def _rows(slabs) -> np.ndarray:
    """Cell indices of a chunk's slabs, in reading order."""
    return np.concatenate([np.arange(a, b) for a, b in slabs])


class _Layer1Stats:
    """Per-chunk sufficient statistics of the first layer's regression and their sums (see module docstring)."""

    def __init__(self, solver: str, n_chunks: int, k: int, m: int, dtype, dev):
        self.solver = solver
        rows = m if solver == "poisson" else k  # poisson: (k x m numerator, k denominator); nnls: (gram, rhs)
        self.a = torch.zeros(n_chunks, k, rows, dtype=dtype, device=dev)
        self.b = torch.zeros(n_chunks, *((k,) if solver == "poisson" else (k, m)), dtype=dtype, device=dev)
        self.resum()

    def resum(self) -> None:
        """Totals recomputed from the stored statistics (no drift from repeated add / subtract)."""
        self.ta, self.tb = self.a.sum(0), self.b.sum(0)

    def others(self, c: int):
        """Totals without chunk ``c``'s stored statistics."""
        return self.ta - self.a[c], self.tb - self.b[c]

    def store(self, c: int, a, b) -> None:
        """Replace chunk ``c``'s statistics."""
        self.ta, self.tb = self.ta - self.a[c] + a, self.tb - self.b[c] + b
        self.a[c], self.b[c] = a, b


def _solve_cells(solver, xb, a1, w, iters):
    """The chunk's cell factors for fixed gene-side loadings ``w`` (k1 x genes): poisson multiplicative
    updates of ``xb ~ a1 w`` or HALS sweeps of its least squares, warm-started from the stored rows."""
    if solver == "poisson":
        denom = w.sum(1).clamp_min(_EPS)
        ratio = torch.empty_like(xb)  # xb / (a1 w), cells x genes: one array for every update (no fresh pages)
        for _ in range(iters):
            torch.matmul(a1, w, out=ratio)
            torch.div(xb, ratio.clamp_min_(_EPS), out=ratio)
            a1 = a1 * (ratio @ w.T) / denom
        return a1
    return hals_sweep(w @ w.T, w @ xb.T, a1.T.contiguous(), iters).T


def _chunk_stats(solver, xb, a1, s):
    """A chunk's statistics: poisson ``(s * a1^T (xb / a1 s), colsum a1)``, nnls ``(a1^T a1, a1^T xb)``."""
    if solver == "poisson":
        return s * (a1.T @ (xb / (a1 @ s).clamp_min(_EPS))), a1.sum(0)
    return a1.T @ a1, a1.T @ xb


def _solve_layer1(solver, stats, c, xb, a1, s, inner_iters):
    """``S1`` from the other chunks' stored statistics plus this chunk's (differentiable in ``a1``).

    Mirrors one epoch of the full-batch fit: ``inner_iters - 1`` updates without autograd, the last inside
    it (poisson), or HALS sweeps then the exact solve on their support (nnls). Returns (S1, chunk statistics).
    """
    oa, ob = stats.others(c)
    if solver == "poisson":
        with torch.no_grad():
            a1d = a1.detach()
            for _ in range(inner_iters - 1):
                za, zb = _chunk_stats(solver, xb, a1d, s)
                s = (oa + za) / (ob + zb).clamp_min(_EPS).unsqueeze(1)
        za, zb = _chunk_stats(solver, xb, a1, s)
        return (oa + za) / (ob + zb).clamp_min(_EPS).unsqueeze(1), (za, zb)
    za, zb = _chunk_stats(solver, xb, a1, s)
    gram, rhs = oa + za, ob + zb
    with torch.no_grad():
        s0 = hals_sweep(gram.detach(), rhs.detach(), s.clone(), inner_iters)
    return _solve_on_support(gram, rhs, s0 > 0), (za, zb)


def _deeper(solver, y, a, s_prev, inner_iters):
    """``S_l`` of a layer below the first (no cell dimension): the full-batch fit's update."""
    if solver == "nnls":
        gram, rhs = a.T @ a, a.T @ y
        with torch.no_grad():
            s0 = hals_sweep(gram.detach(), rhs.detach(), s_prev.clone(), inner_iters)
        return _solve_on_support(gram, rhs, s0 > 0)
    with torch.no_grad():
        s0 = _mu_poisson(y.detach(), a.detach(), s_prev, inner_iters - 1)
    return _mu_step(y, a, s0)


def _scan(read, n: int, m: int, batch_size: int, digest: bool) -> tuple[float, list]:
    """Mean of the matrix, in one streaming pass (float64 sums), and with ``digest`` a digest of every row range
    read (the data part of a checkpoint's fingerprint; else an empty list)."""
    total, digests = 0.0, []
    for a in range(0, n, batch_size):
        block = np.asarray(read(a, min(n, a + batch_size)))
        total += float(np.asarray(block, dtype=np.float64).sum())
        if digest:
            digests.append(hashlib.sha256(np.ascontiguousarray(block, dtype=np.float32).tobytes()).hexdigest())
    return total / (n * m), digests


def _state(epoch: int, trace, theta1, shared, opt, s_prev, stats) -> dict:
    """The fit's state after ``epoch`` epochs as named arrays (`scfactor.core.checkpoint`)."""
    arrays = {"trace": torch.as_tensor(trace[:epoch]), "theta1": theta1, "stats_a": stats.a, "stats_b": stats.b}
    arrays.update({f"s{li}": t for li, t in enumerate(s_prev)})
    for li, a in enumerate(shared):
        arrays[f"theta{li + 2}"] = a
        arrays.update({f"adam{li + 2}/{key}": v for key, v in (opt.state.get(a, {}) if opt else {}).items()})
    return {k: v.detach().cpu().numpy() for k, v in arrays.items()}


@torch.no_grad()
def _restore(arrays: dict, trace, theta1, shared, opt, s_prev, stats) -> None:
    """Load a `_state` into the fit's tensors (in place) and the optimizer."""
    def like(key, ref):
        return torch.as_tensor(arrays[key]).to(device=ref.device, dtype=ref.dtype)
    trace[:len(arrays["trace"])] = arrays["trace"]
    for key, ref in (("theta1", theta1), ("stats_a", stats.a), ("stats_b", stats.b)):
        ref.copy_(like(key, ref))
    s_prev[:] = [like(f"s{li}", t) for li, t in enumerate(s_prev)]
    for li, a in enumerate(shared):
        a.copy_(like(f"theta{li + 2}", a))
        prefix = f"adam{li + 2}/"
        state = {k[len(prefix):]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith(prefix)}
        if opt is not None and state:
            opt.state[a] = {k: v.to(a.device) if v.ndim else v for k, v in state.items()}


@contextlib.contextmanager
def flush_denormals():
    """Float arithmetic on the CPU with subnormal numbers (below 1.2e-38 in float32) read and written as zero, for
    the duration (`torch.set_flush_denormal`; on exit the calling thread is set back to the default).

    The multiplicative updates shrink some cell factors towards zero pass after pass; once they are subnormal every
    product with them takes the processor's slow path, and a pass's time grows with their number (10.7 s per pass
    at the start, 14.0 s after 14 passes at 50,000 cells; flushed 5.2 and 5.7 s, identical loss tables:
    `benchmarks/results/layers_minibatch_speed_14.md`). The flag belongs to a thread; the thread pool torch starts
    at its first parallel operation inherits it, so the step sets it before any (the worker threads keep it).
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@flush_denormals()
def fit_layered_nmf_minibatch(read, n: int, m: int, *, layers, solver: str, epochs: int, lr: float, seed: int,
                              inner_iters: int, batch_size: int, cell_iters: int, device="cpu",
                              log_every: int | None = None, dtype=None, checkpoint_path=None) -> LayeredNMFResult:
    """Fit the multilayer NMF to ``n`` cells x ``m`` genes read by ``read(start, stop)`` (a dense float array of
    those rows) on minibatches of about ``batch_size`` cells (see the module docstring).

    Settings as `scfactor.layers.model.fit_layered_nmf` (schema ``layers``); ``loss[e]`` is the mean over the
    chunks of epoch ``e`` of each chunk's loss at its step (weighted by its cells). ``checkpoint_path``: a
    checkpoint file written after every epoch and resumed from when it belongs to this data and these settings.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown beta solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if min(inner_iters, epochs, batch_size, cell_iters) < 1:
        raise ValueError(f"inner_iters, epochs, batch_size and cell_iters must be >= 1; got {inner_iters}, {epochs}, "
                         f"{batch_size}, {cell_iters}")
    dtype = dtype or torch.float32
    dev = torch.device(device)
    layers = validate_layers(layers, n, m)
    mean, digests = _scan(read, n, m, batch_size, digest=checkpoint_path is not None)
    if mean == 0:
        raise AllZero("the matrix is all zeros")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    dims = [n] + layers
    scale = (mean / layers[-1]) ** (1.0 / (len(layers) + 1))
    inits = [(torch.rand(dims[i], dims[i + 1], generator=gen, dtype=dtype) * scale).to(dev) for i in range(len(layers))]
    theta1, shared = inits[0], [torch.nn.Parameter(t) for t in inits[1:]]
    s_prev = [(torch.rand(k, m, generator=gen, dtype=dtype) * scale).to(dev) for k in layers]
    opt = torch.optim.Adam(shared, lr=lr) if shared else None
    chunks = chunk_slabs(n, batch_size, seed)
    rows = [torch.as_tensor(_rows(c), device=dev) for c in chunks]
    stats = _Layer1Stats(solver, len(chunks), layers[0], m, dtype, dev)
    order_rng = np.random.default_rng(seed + 1)
    xlogx = np.full(len(chunks), np.nan)  # per chunk: the loss's constant term (poisson), at the chunk's first visit

    def load(c):
        return torch.as_tensor(np.concatenate([np.asarray(read(a, b), dtype=np.float32) for a, b in chunks[c]]),
                               dtype=dtype).to(dev)

    trace = np.empty(epochs)
    start, fp = 0, None
    if checkpoint_path is not None:
        fp = checkpoint.fingerprint(np.asarray(digests), settings=dict(
            n=n, m=m, layers=layers, solver=solver, epochs=epochs, lr=lr, seed=seed, inner_iters=inner_iters,
            batch_size=batch_size, cell_iters=cell_iters, dtype=str(dtype), device=dev.type))
        ck = checkpoint.load(checkpoint_path, fp)
        if ck is not None:
            _restore(ck.arrays, trace, theta1, shared, opt, s_prev, stats)
            start = min(ck.epoch, epochs)
            LOG.info("layers (minibatch): resuming from epoch %d (checkpoint %s)", start, checkpoint_path)
            for _ in range(start):  # the chunk orders of the epochs done
                order_rng.permutation(len(chunks))
    progress = Progress("layers (minibatch)", epochs, start) if log_every else None
    t0, c0 = time.perf_counter(), time.process_time()
    for epoch in range(start, epochs):
        stats.resum()
        acc = 0.0
        for c in order_rng.permutation(len(chunks)):
            xb, idx = load(c), rows[c]
            with torch.no_grad():
                theta1[idx] = _solve_cells(solver, xb, theta1[idx], reconstruct(shared, s_prev[-1]), cell_iters)
            a1 = theta1[idx]
            s, (za, zb) = _solve_layer1(solver, stats, c, xb, a1, s_prev[0], inner_iters)
            s_list = [s]
            for li, a in enumerate(shared, start=1):
                s = _deeper(solver, s, a, s_prev[li], inner_iters)
                s_list.append(s)
            if np.isnan(xlogx[c]):
                xlogx[c] = float((torch.special.xlogy(xb, xb) - xb).mean()) if solver == "poisson" else 0.0
            loss = _loss(xb, reconstruct([a1, *shared], s_list[-1]), solver, float(xlogx[c]))
            if opt is not None:
                descend(opt, loss, shared)
            with torch.no_grad():
                stats.store(c, za.detach(), zb.detach())
                for li, sl in enumerate(s_list):
                    s_prev[li] = sl.detach().clamp_min(_EPS) if solver == "poisson" else sl.detach()
            acc += float(loss.detach()) * len(idx) / n
        record(trace, epoch, acc, progress, log_every)
        if checkpoint_path is not None:
            checkpoint.save(checkpoint_path, _state(epoch + 1, trace, theta1, shared, opt, s_prev, stats),
                            fingerprint=fp, epoch=epoch + 1)
    betas = _final_betas(solver, load, chunks, rows, theta1, shared, s_prev, stats, inner_iters)
    return LayeredNMFResult(thetas=[t.detach().cpu().numpy().astype(np.float64) for t in [theta1, *shared]],
                            betas=betas, loss=trace, layers=layers, solver=solver,
                            seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                            params={"epochs": epochs, "lr": lr, "seed": seed, "inner_iters": inner_iters,
                                    "batch_size": batch_size, "cell_iters": cell_iters, "minibatch": True})


@torch.no_grad()
def _final_betas(solver, load, chunks, rows, theta1, shared, s_prev, stats, inner_iters) -> list:
    """The ``S_l`` re-solved for the final thetas over all cells, as the full-batch fit ends (poisson:
    ``inner_iters`` streaming passes, each one exact multiplicative update of ``S1``; nnls: one pass for the
    statistics, then the sweeps and the support solve)."""
    s = s_prev[0]
    for _ in range(inner_iters if solver == "poisson" else 1):
        for c in range(len(chunks)):
            stats.store(c, *_chunk_stats(solver, load(c), theta1[rows[c]], s))
        if solver == "poisson":
            s = stats.ta / stats.tb.clamp_min(_EPS).unsqueeze(1)
    if solver == "nnls":
        s0 = hals_sweep(stats.ta, stats.tb, s.clone(), inner_iters)
        s = _solve_on_support(stats.ta, stats.tb, s0 > 0)
    out = [s]
    for li, a in enumerate(shared, start=1):
        y = out[-1]
        if solver == "nnls":
            gram = a.T @ a
            s0 = hals_sweep(gram, a.T @ y, s_prev[li].clone(), inner_iters)
            out.append(_solve_on_support(gram, a.T @ y, s0 > 0))
        else:
            out.append(_mu_poisson(y, a, s_prev[li], inner_iters))
    return [t.T.cpu().numpy().astype(np.float64) for t in out]
