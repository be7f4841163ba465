"""Randomized truncated SVD of a sparse matrix read a block of rows at a time (the SVD baseline of
`scfactor.densify.heldout`, issue 19: atlas scale).

`randomized_svd` is the algorithm of ``sklearn.utils.extmath.randomized_svd`` at its defaults (Halko et al. 2009,
algorithms 4.3 / 4.4: 10 extra columns, 7 power iterations when the rank is under a tenth of the smaller side
and 4 otherwise, LU normalisation between them, the wider side transposed, signs made deterministic by
``svd_flip``), with the matrix known only through its products ``X @ Q`` and ``X.T @ P``, each computed over
consecutive blocks of rows (`scfactor.densify.spill.row_chunks`): nothing the size of the matrix is held besides
it, only arrays of (cells or genes) x (rank + 10). A matrix of one block gives sklearn's numbers to the bit
(`tests/densify/test_heldout.py`); more blocks add ``X.T @ P`` in another order (differences of rounding size).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
import scipy.sparse as sp


def _blocks(x, transform: Callable, entries: int):
    from .spill import row_chunks
    for a, b, block in row_chunks(x, entries):
        yield a, b, sp.csr_matrix((transform(block.data), block.indices, block.indptr), shape=block.shape)


def _matmat(x, q, transform, entries) -> np.ndarray:
    """``f(x) @ q`` a block of rows at a time (``f``: ``transform`` of the stored values)."""
    out = np.empty((x.shape[0], q.shape[1]), dtype=np.result_type(q.dtype, np.float64))
    for a, b, block in _blocks(x, transform, entries):
        out[a:b] = block @ q
    return out


def _rmatmat(x, p, transform, entries) -> np.ndarray:
    """``f(x).T @ p`` summed over blocks of rows."""
    out = np.zeros((x.shape[1], p.shape[1]), dtype=np.result_type(p.dtype, np.float64))
    for a, b, block in _blocks(x, transform, entries):
        out += block.T @ p[a:b]
    return out


def randomized_svd(x, k: int, seed: int, transform: Callable = lambda v: v.astype(np.float64),
                   entries: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(u, s, vt)``: the rank-``k`` randomized SVD of ``transform(x)`` (``x`` a scipy CSR matrix or a
    `scfactor.densify.spill.SpilledCSR`; ``transform`` maps a block's stored values to float64 and keeps zeros
    zero, e.g. ``log1p``), read ``entries`` stored entries at a time (default
    `scfactor.densify.spill.CHUNK_ENTRIES`), as ``sklearn``'s ``randomized_svd(f(x), k,
    random_state=seed)`` computes it."""
    from scipy import linalg
    from sklearn.utils.extmath import svd_flip
    n, m = x.shape
    transpose = n < m
    # the operator M (x or its transpose) as sklearn sees it: M @ Q and M.T @ Q
    products = (partial(_matmat, x, transform=transform, entries=entries),
                partial(_rmatmat, x, transform=transform, entries=entries))
    mul, rmul = products[::-1] if transpose else products
    n_iter = 7 if k < 0.1 * min(n, m) else 4
    rng = np.random.RandomState(seed)
    q = rng.normal(size=((n if transpose else m), k + 10))

    def normalise(a):
        return linalg.lu(a, permute_l=True, check_finite=False)[0] if n_iter > 2 else a
    for _ in range(n_iter):
        q = normalise(mul(q))
        q = normalise(rmul(q))
    q = linalg.qr(mul(q), mode="economic", check_finite=False)[0]
    b = rmul(q).T  # Q.T @ M
    uhat, s, vt = linalg.svd(b, full_matrices=False, lapack_driver="gesdd")
    del b
    u = q @ uhat
    if transpose:
        u, vt = svd_flip(u, vt, u_based_decision=False)
        return vt[:k].T, s[:k], u[:, :k].T
    u, vt = svd_flip(u, vt)
    return u[:, :k], s[:k], vt[:k]
