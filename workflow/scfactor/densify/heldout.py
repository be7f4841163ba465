"""Held-out evaluation of matrix completion / imputation on count matrices.

Hide a seeded fraction of the nonzero entries of a cells x genes count matrix (they become zeros
in the training matrix), let a method predict the whole matrix, and score its predictions on the
hidden entries only: Pearson and Spearman correlation on ``log1p``, median absolute error and RMSE
on the counts scale. Two baselines come with it: no imputation (the hidden entries stay zero) and
a rank-k truncated SVD of ``log1p`` of the training matrix. Used by NeuMF densification and its
benchmark (MAGIC, scVI).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.csr_stack import row_blocks, stack_rows

METRICS = ("pearson_log1p", "spearman_log1p", "median_abs_error", "rmse")
#: held-out entries reconstructed at a time by `svd_baseline` (bounds its gathered factor rows)
_ENTRIES_PER_CHUNK = 1 << 16
#: stored entries per hiding chunk of `masked_blocks`
HIDE_CHUNK = 1 << 22
#: held-out entries that `evaluate` scores at most (every k-th beyond)
SCORED_MAX = 1 << 24


@dataclass
class HeldOut:
    """Hidden entries of a count matrix: row/column indices and their observed counts (as `hidden_entries` makes
    them: int32 indices, the matrix's value type)."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.size)


def mask_nonzeros(x, frac: float, seed: int) -> tuple[sp.csr_matrix, HeldOut]:
    """Hide a seeded ``frac`` of the nonzero entries of ``x`` (`masked_blocks`: which ones depends only on
    ``seed`` and the sparsity pattern, so the same seed hides the same entries for every method).

    Returns the training matrix (CSR, same dtype, hidden entries removed, i.e. zero) and the hidden entries
    sorted by (row, column). ``frac == 0`` hides nothing. ``x`` is copied only when it is not already canonical
    CSR without explicit zeros. Densify itself hides the entries of its matrix on disk the same way
    (`scfactor.densify.spill`), never holding the counts in memory.
    """
    x = canonical(x)
    held = hidden_entries(x.nnz, frac, x.shape, x.dtype)
    train = stack_rows((b for _, _, b in masked_blocks(x, frac, seed, held)), x.shape[1], x.dtype)
    train.has_canonical_format = True
    return train, held


def hidden_entries(nnz: int, frac: float, shape: tuple[int, int], dtype=np.float32) -> HeldOut:
    """An empty `HeldOut` of the size `masked_blocks` fills for a ``shape`` matrix of ``nnz`` stored entries of
    type ``dtype``: rows and columns int32 while they fit (int64 beyond), values of the matrix's type, 12 bytes
    per hidden entry for float32 counts."""
    n = _HiddenChunks(nnz, frac, 0).total()
    index = np.int32 if max(shape) <= np.iinfo(np.int32).max else np.int64
    return HeldOut(np.empty(n, index), np.empty(n, index), np.empty(n, dtype))


def masked_blocks(x, frac: float, seed: int, held: HeldOut):
    """Yield ``(a, b, training rows a:b)`` of canonical ``x`` (a scipy CSR matrix or a
    `scfactor.densify.spill.SpilledCSR`) with a seeded ``frac`` of its nonzero entries hidden, a block of rows at a
    time, filling ``held`` (`hidden_entries`) with the hidden entries in (row, column) order.

    The stored entries are numbered in row-major order and cut into chunks of `HIDE_CHUNK`; chunk ``j`` hides
    ``round(frac * its size)`` of its entries, drawn without replacement by ``numpy``'s ``choice`` seeded with
    ``seed`` (chunk 0) or ``(seed, j)``. So which entries are hidden does not depend on the blocks, and a matrix
    of at most `HIDE_CHUNK` entries hides what one seeded draw over all of its entries hides. Memory: one chunk's
    draw (an index of `HIDE_CHUNK` entries), one block and ``held``, never an index of every stored count.
    """
    from .spill import row_chunks
    hidden = _HiddenChunks(x.nnz, frac, seed)
    if len(held) != hidden.total():
        raise ValueError(f"held has room for {len(held)} hidden entries, not {hidden.total()}")
    k = 0
    for a, b, block in row_chunks(x):
        s0 = int(x.indptr[a])
        hide = hidden.between(s0, s0 + block.nnz) - s0
        if hide.size:
            rows = (np.searchsorted(block.indptr, hide, side="right") - 1).astype(np.int64, copy=False)
            where = slice(k, k + hide.size)
            held.rows[where], held.cols[where], held.values[where] = rows + a, block.indices[hide], block.data[hide]
            k += hide.size
            keep = np.ones(block.nnz, dtype=bool)
            keep[hide] = False
            kept_per_row = np.diff(block.indptr) - np.bincount(rows, minlength=block.shape[0])
            indptr = np.concatenate([[0], np.cumsum(kept_per_row)]).astype(block.indptr.dtype)
            block = sp.csr_matrix((block.data[keep], block.indices[keep], indptr), shape=block.shape)
            block.has_canonical_format = True  # a subset of canonical rows, in order
        yield a, b, block


class _HiddenChunks:
    """The hidden stored entries of `masked_blocks`, by global entry number, one chunk's draw held at a time."""

    def __init__(self, nnz: int, frac: float, seed: int):
        self.nnz, self.frac, self.seed = int(nnz), float(frac), int(seed)
        self._j, self._hide = -1, None

    def _size(self, j: int) -> int:
        return min(HIDE_CHUNK, self.nnz - j * HIDE_CHUNK)

    def total(self) -> int:
        """Hidden entries in all."""
        return sum(int(round(self.frac * self._size(j))) for j in range(-(-self.nnz // HIDE_CHUNK)))

    def between(self, s0: int, s1: int) -> np.ndarray:
        """Sorted numbers (int64) of the hidden entries in ``[s0, s1)``."""
        parts = [np.zeros(0, np.int64)]
        for j in range(s0 // HIDE_CHUNK, -(-s1 // HIDE_CHUNK)):
            h = self._chunk(j) + j * HIDE_CHUNK
            parts.append(h[np.searchsorted(h, s0):np.searchsorted(h, s1)])
        return np.concatenate(parts)

    def _chunk(self, j: int) -> np.ndarray:
        if j != self._j:
            size = self._size(j)
            k = int(round(self.frac * size))
            rng = np.random.default_rng(self.seed if j == 0 else [self.seed, j])
            self._hide = np.sort(rng.choice(size, size=k, replace=False)).astype(np.int64) if k else np.zeros(0, np.int64)
            self._j = j
        return self._hide


def entries_in_rows(rows: np.ndarray):
    """A function ``(start, stop) -> positions`` of the entries of ``rows`` (held-out entries' rows) that lie in rows
    ``start:stop``: a slice when ``rows`` is sorted (as `masked_blocks` and densify's output give them: nothing is
    copied), else an index into a stable argsort (two arrays of ``rows``'s size)."""
    if rows.size < 2 or bool(np.all(rows[1:] >= rows[:-1])):
        return lambda start, stop: slice(*row_range(rows, start, stop))
    order = np.argsort(rows, kind="stable")
    in_order = rows[order]
    return lambda start, stop: order[slice(*row_range(in_order, start, stop))]


def row_range(rows: np.ndarray, start: int, stop: int) -> tuple[int, int]:
    """``(k0, k1)``: the entries of sorted ``rows`` that lie in rows ``start:stop``. The bounds are given in
    ``rows``'s own type: searching int32 rows for int64 bounds would copy the whole array to int64 first (28 ms
    and 330 MB for the 41 M held-out entries of a million cells, at every block)."""
    k0, k1 = np.searchsorted(rows, np.array([start, stop], dtype=rows.dtype))
    return int(k0), int(k1)


def unmask(train, held: HeldOut, consume: bool = False) -> sp.csr_matrix:
    """The matrix that `mask_nonzeros` hid ``held`` from: ``train`` with the hidden entries put back
    (canonical CSR, ``train``'s dtype).

    The training entries move up to their places a chunk at a time, last chunk first, and the hidden entries fill
    the gaps. ``consume=True`` (``train`` a CSR matrix): ``train``'s own value and index arrays are grown in place
    (``ndarray.resize``, which refuses arrays that anything else refers to; they are copied then) and ``train`` is
    left an all-zero matrix, so memory grows by the hidden entries instead of by a second copy of the counts.
    """
    consume = consume and sp.issparse(train) and train.format == "csr" and train.has_canonical_format
    if not consume:
        train = canonical(train)
    n = train.shape[0]
    n_train, total = train.nnz, train.nnz + len(held)
    before = _train_entries_before(train, held)
    indptr = train.indptr.astype(np.int64) + np.concatenate([[0], np.cumsum(np.bincount(held.rows, minlength=n))])
    data, indices = _grown(train, "data", total, consume), _grown(train, "indices", total, consume)
    if consume:
        train.indptr = np.zeros(n + 1, dtype=train.indptr.dtype)
    if len(held):
        for stop in range(n_train, 0, -_ENTRIES_PER_CHUNK):  # last chunk first: no entry is overwritten unread
            start = max(0, stop - _ENTRIES_PER_CHUNK)
            t = np.arange(start, stop)
            dest = t + np.searchsorted(before, t, side="right")  # up by the hidden entries placed before it
            data[dest], indices[dest] = data[start:stop].copy(), indices[start:stop].copy()
        before += np.arange(len(held))  # now the hidden entries' own places
        data[before], indices[before] = held.values, held.cols
    if total > np.iinfo(np.int32).max and indices.dtype != np.int64:
        indices = indices.astype(np.int64)
    x = sp.csr_matrix((data, indices, indptr.astype(indices.dtype)), shape=train.shape, copy=False)
    x.has_canonical_format = True
    return x


def _train_entries_before(train, held: HeldOut) -> np.ndarray:
    """For each hidden entry (sorted by row, column), how many entries of canonical ``train`` precede it in
    row-major order (int64), found a block of about ``16 * _ENTRIES_PER_CHUNK`` training entries at a time."""
    indptr, m = train.indptr, train.shape[1]
    before = np.empty(len(held), dtype=np.int64)
    for a, b in (row_blocks(indptr, 16 * _ENTRIES_PER_CHUNK) if len(held) else ()):
        k0, k1 = row_range(held.rows, a, b)
        if k1 > k0:
            s0, s1 = int(indptr[a]), int(indptr[b])
            local = np.repeat(np.arange(b - a, dtype=np.int64), np.diff(indptr[a:b + 1]))
            keys = local * m + train.indices[s0:s1]
            wanted = (held.rows[k0:k1].astype(np.int64) - a) * m + held.cols[k0:k1]
            before[k0:k1] = s0 + np.searchsorted(keys, wanted)
    return before


def _grown(train, name: str, total: int, in_place: bool) -> np.ndarray:
    """``train``'s array ``name`` (``data`` / ``indices``) lengthened to ``total`` entries: in place when
    ``in_place`` and nothing else refers to it (``train`` then holds an empty array instead), else a copy."""
    arr = getattr(train, name)
    if in_place:
        setattr(train, name, arr[:0].copy())
        owner = arr.base
        # scipy keeps a whole view of the array it was given: grow that array itself, but only when nothing but
        # this function refers to the view (a second holder of the view would keep pointing at the old memory)
        if (isinstance(owner, np.ndarray) and owner.dtype == arr.dtype and owner.shape == arr.shape
                and owner.__array_interface__["data"] == arr.__array_interface__["data"]
                and sys.getrefcount(arr) <= 2):
            arr = owner
        del owner
        try:
            arr.resize(total, refcheck=True)
            return arr
        except ValueError:  # referenced elsewhere: copy it
            pass
    out = np.empty(total, dtype=arr.dtype)
    out[:arr.size] = arr
    return out


def canonical(x) -> sp.csr_matrix:
    """``x`` as CSR with sorted, unique indices and no explicit zeros (copied only when it is not)."""
    x = sp.csr_matrix(x)
    if x.has_canonical_format and np.all(x.data != 0):
        return x
    x = x.copy()
    x.sum_duplicates()
    x.eliminate_zeros()
    x.sort_indices()
    return x


def heldout_metrics(pred: np.ndarray, obs: np.ndarray) -> dict:
    """Scores of predictions ``pred`` against observed counts ``obs`` (1-d arrays, same length).

    Correlations are on ``log1p`` of both (negative predictions clipped to 0 first); they are NaN
    when either side is constant (e.g. the zero baseline). Errors are on the counts scale.
    """
    from scipy.stats import pearsonr, spearmanr
    pred, obs = np.asarray(pred), np.asarray(obs, dtype=np.float64)
    if pred.shape != obs.shape:
        raise ValueError(f"pred and obs differ in shape: {pred.shape} vs {obs.shape}")
    out = {"n": int(obs.size)}
    if obs.size == 0:
        return {**out, **{k: float("nan") for k in METRICS}}
    # one working array at a time, computed in place (a held-out set can have 10^7-10^8 entries)
    err = np.subtract(pred, obs, dtype=np.float64)
    rmse = float(np.sqrt(np.mean(np.square(err))))
    median_abs = float(np.median(np.abs(err, out=err), overwrite_input=True))
    del err
    lp = np.array(pred, dtype=np.float64)
    np.log1p(np.clip(lp, 0, None, out=lp), out=lp)
    lo = np.log1p(obs)
    constant = np.ptp(lp) == 0 or np.ptp(lo) == 0 or obs.size < 2
    out["pearson_log1p"] = float("nan") if constant else float(pearsonr(lp, lo)[0])
    out["spearman_log1p"] = float("nan") if constant else float(spearmanr(lp, lo)[0])
    out["median_abs_error"] = median_abs
    out["rmse"] = rmse
    return out


def svd_baseline(train, held: HeldOut, rank: int, seed: int) -> np.ndarray:
    """Predictions at the hidden entries from a rank-``rank`` truncated SVD of ``log1p(train)`` (``train`` a scipy
    CSR matrix or a `scfactor.densify.spill.SpilledCSR`).

    The SVD is ``sklearn``'s randomized one, computed a block of rows at a time (`scfactor.densify.rsvd`: the
    float64 ``log1p`` values of one block at a time, factors of cells x (rank + 10)); the reconstruction is mapped
    back with ``expm1`` and clipped at 0 (counts scale), only at the hidden entries, a chunk at a time.
    """
    from .rsvd import randomized_svd
    from .spill import is_spilled
    if not is_spilled(train):
        train = canonical(train)
    k = int(max(1, min(rank, min(train.shape) - 1)))
    u, s, vt = randomized_svd(train, k, seed, transform=lambda v: np.log1p(v, dtype=np.float64))
    us, v = u * s, vt.T
    del u
    rec = np.empty(len(held))
    for i in range(0, len(held), _ENTRIES_PER_CHUNK):  # rows of the factors gathered a chunk at a time
        part = slice(i, i + _ENTRIES_PER_CHUNK)
        rec[part] = np.einsum("ij,ij->i", us[held.rows[part]], v[held.cols[part]])
    return np.clip(np.expm1(rec), 0, None)


def evaluate(predictions: dict, held: HeldOut) -> pd.DataFrame:
    """A metrics table (one row per method) for a dict ``method -> predictions at held entries``.

    More than `SCORED_MAX` held-out entries are scored on every k-th of them (k = ceil(entries / `SCORED_MAX`), in
    their row-major order: the same entries for every method; column ``n`` says how many), so that scoring holds
    a bounded number of working arrays whatever the size of the data (Spearman's ranks alone take about 60 bytes
    per scored entry); up to it every entry is scored.
    """
    step = scored_step(len(held))
    rows = []
    for name, pred in predictions.items():
        rows.append({"method": name, **heldout_metrics(np.asarray(pred)[::step], held.values[::step])})
    table = pd.DataFrame(rows, columns=["method", "n", *METRICS])
    table[list(METRICS)] = table[list(METRICS)].astype(float).round(6)  # stable bytes in TSVs
    return table


def scored_step(n_held: int) -> int:
    """Every how many held-out entries `evaluate` scores one (1 up to `SCORED_MAX` entries)."""
    return max(1, -(-int(n_held) // SCORED_MAX))


def baselines(train, held: HeldOut, rank: int, seed: int) -> dict:
    """Predictions of the two reference methods: ``zero`` (no imputation) and ``svd_rank<k>``."""
    return {"zero": np.zeros(len(held)), f"svd_rank{rank}": svd_baseline(train, held, rank, seed)}
