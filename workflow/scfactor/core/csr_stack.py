"""CSR matrices by blocks of rows: stacking blocks into one matrix without holding every block beside their
stack (`stack_rows`), walking a matrix in blocks of about the same number of stored entries (`row_blocks`) and
summing its rows a block at a time (`row_sums`).

`stack_rows` gives what ``scipy.sparse.vstack(blocks, format="csr")`` gives (the same values, column indices and
row pointers, block after block, explicit zeros and unsorted rows kept as they are) but copies each block into
buffers that grow in place (``ndarray.resize``: ``realloc``, which moves large buffers by remapping pages rather
than copying them) as the blocks arrive, so memory holds the result and one block instead of every block and
then their stack as well (densify's read of a million cells, 414 M stored counts, peaked at 4.14 instead of
6.70 GiB: `benchmarks/results/densify_memory_1m_exact.md`). Index arrays are int32 while the stored entries
and columns fit, int64 beyond, as scipy's.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import scipy.sparse as sp

_INT32_MAX = np.iinfo(np.int32).max
#: stored entries the buffers first hold; they grow by half at a time from there
_FIRST_CAPACITY = 1 << 16


def stack_rows(blocks: Iterable, n_cols: int, dtype) -> sp.csr_matrix:
    """The CSR matrix of ``blocks`` (sparse matrices of ``n_cols`` columns, converted to CSR) one below the other,
    values cast to ``dtype``; a matrix with no rows when there is no block."""
    data = np.empty(0, dtype=dtype)
    indices = np.empty(0, dtype=np.int32 if n_cols <= _INT32_MAX else np.int64)
    row_ends, nnz, n_rows = [np.zeros(1, dtype=np.int64)], 0, 0
    for block in blocks:
        block = sp.csr_matrix(block)
        if block.shape[1] != n_cols:
            raise ValueError(f"a block has {block.shape[1]} columns, not {n_cols}")
        end = nnz + block.nnz
        if end > data.size:
            capacity = max(end, data.size + data.size // 2, _FIRST_CAPACITY)
            if capacity > _INT32_MAX and indices.dtype == np.int32:
                indices = indices.astype(np.int64)  # the row pointers will not fit int32: neither type may
            data.resize(capacity, refcheck=False)
            indices.resize(capacity, refcheck=False)
        data[nnz:end] = block.data
        indices[nnz:end] = block.indices
        row_ends.append(block.indptr[1:].astype(np.int64) + nnz)
        nnz, n_rows = end, n_rows + block.shape[0]
    data.resize(nnz, refcheck=False)
    indices.resize(nnz, refcheck=False)
    index_dtype = np.int64 if max(nnz, n_rows, n_cols) > _INT32_MAX else np.int32
    indptr = np.concatenate(row_ends).astype(index_dtype)
    return sp.csr_matrix((data, indices.astype(index_dtype, copy=False), indptr), shape=(n_rows, n_cols), copy=False)


def row_blocks(indptr: np.ndarray, entries: int) -> Iterator[tuple[int, int]]:
    """``(a, b)`` row ranges covering every row of a CSR matrix with row pointers ``indptr``, in order, each holding
    at most ``entries`` stored entries, or one row when that row alone holds more."""
    a, n = 0, len(indptr) - 1
    while a < n:
        b = min(n, max(a + 1, int(np.searchsorted(indptr, indptr[a] + entries, side="right")) - 1))
        yield a, b
        a = b


def row_sums(x: sp.csr_matrix, dtype=None, entries: int = 1 << 22) -> np.ndarray:
    """``x.sum(axis=1, dtype=dtype)`` as a 1-d array (each row summed in order, the same numbers), a block of rows
    (`row_blocks`, ``entries`` stored values) at a time: scipy sums the whole matrix through a copy of its values
    in the sum's type (int32 counts: an int64 copy, 3.3 GB at a million cells); here that copy is one block's."""
    parts = [np.asarray(x[:0].sum(axis=1, dtype=dtype)).ravel()]
    parts += [np.asarray(x[a:b].sum(axis=1, dtype=dtype)).ravel() for a, b in row_blocks(x.indptr, entries)]
    return np.concatenate(parts)
