"""The count matrix of the preprocess step, read in blocks of cells (issue 19: a million cells in bounded memory).

A `Counts` serves int32 CSR blocks of chosen rows (cells, ascending) and columns (genes) of the input's counts,
``CHUNK_CELLS`` input rows at a time, either from a matrix already in memory (10x, CSV, sample sheets and any
``.h5ad`` that cannot be streamed) or straight from the CSR (or dense) arrays of an ``.h5ad`` file through h5py
(`open_h5ad`): the whole matrix is then never in memory, only one block and per-cell / per-gene vectors.
Every block is what the in-memory step computed on the same rows, so results do not depend on the block size.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core import io

#: input rows (cells) per block; a test lowers it to check that results do not depend on it
CHUNK_CELLS = 10_000


class Counts:
    """Blocks of a cells x genes count matrix: ``obs_names`` / ``var_names`` name its rows and columns."""

    def __init__(self, obs_names, var_names, block_fn, n_obs: int, dtype=None):
        self.obs_names, self.var_names = pd.Index(obs_names), pd.Index(var_names)
        self._block, self.n_obs, self.dtype = block_fn, n_obs, dtype

    @classmethod
    def in_memory(cls, adata) -> "Counts":
        """The counts ``adata.X`` (int32 CSR, as `scfactor.preprocess.pipeline.read_counts` leaves it)."""
        x = sp.csr_matrix(adata.X)
        return cls(adata.obs_names, adata.var_names, lambda a, b: x[a:b], x.shape[0])

    def positions(self, adata) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of this matrix holding the cells and genes of ``adata`` (a subset of them)."""
        rows = self.obs_names.get_indexer(adata.obs_names)
        cols = self.var_names.get_indexer(adata.var_names)
        if (rows < 0).any() or (cols < 0).any() or (np.diff(rows) <= 0).any():
            raise ValueError("the cells and genes must be an ordered subset of the count matrix's")
        return rows, cols

    def blocks(self, rows: np.ndarray, cols: np.ndarray | None = None,
               dtype=np.int32) -> Iterator[tuple[slice, sp.csr_matrix]]:
        """``(where, block)`` per group of ``CHUNK_CELLS`` input rows: the CSR block (``dtype``; None keeps
        the file's) of the ``rows`` (ascending) among them, restricted to ``cols``, and the slice of ``rows`` it covers."""
        rows = np.asarray(rows)
        start = 0
        for a in range(0, self.n_obs, CHUNK_CELLS):
            b = min(a + CHUNK_CELLS, self.n_obs)
            end = int(np.searchsorted(rows, b))
            if end > start:
                block = sp.csr_matrix(self._block(a, b))
                block = block if dtype is None else block.astype(dtype)
                if end - start < b - a or rows[start] != a:
                    block = block[rows[start:end] - a]
                if cols is not None and not (len(cols) == block.shape[1] and (cols == np.arange(len(cols))).all()):
                    block = block[:, cols]
                yield slice(start, end), block
            start = end


def read_rows(node, a: int, b: int, indptr=None):
    """Rows ``a:b`` of a cells x genes matrix stored in an ``.h5ad``, read through h5py without the other rows.

    ``node``: the h5py node of the matrix (`h5ad_matrix`). A CSR group needs ``indptr``, its row pointers
    already in memory (one number per row, read once by the caller): the rows' slices of ``data`` and
    ``indices`` are read and returned as a scipy CSR matrix of the file's dtype. A dense dataset (``indptr``
    None) gives ``node[a:b]``, an array.
    """
    if indptr is None:
        return node[a:b]
    p0, p1 = int(indptr[a]), int(indptr[b])
    return sp.csr_matrix((node["data"][p0:p1], node["indices"][p0:p1], indptr[a:b + 1] - p0),
                         shape=(b - a, int(node.attrs["shape"][1])))


def h5ad_matrix(f, layer):
    """The h5py node of the counts (``X`` or ``layers/<layer>``) and its encoding, or None when absent."""
    node = f.get("X") if layer in (None, "X") else f.get(f"layers/{layer}")
    if node is None:
        return None, None
    return node, str(node.attrs.get("encoding-type", "array" if hasattr(node, "shape") else ""))


def open_h5ad(path, layer, carry_over: bool = True):
    """The ``.h5ad`` at ``path`` without its count matrix (an AnnData with ``X`` None) and its `Counts` read
    from the file block by block; None when the file cannot be streamed (no such matrix, a CSC matrix, or, with
    ``carry_over``, a ``raw`` section or layers other than ``counts`` that the caller would carry over): the
    caller then reads it whole, which also gives the usual one-line error for a bad file. Without
    ``carry_over`` (a caller that needs the counts alone) the other layers and ``raw`` are neither read nor in
    the AnnData."""
    import anndata as ad
    import h5py
    from anndata.io import read_elem
    try:
        with h5py.File(path, "r") as f:
            node, encoding = h5ad_matrix(f, layer)
            other_layers = set(f.get("layers", {}).keys()) - {"counts"}
            if node is None or encoding not in ("csr_matrix", "array") or carry_over and ("raw" in f or other_layers):
                return None
            parts = {k: read_elem(f[k]) for k in ("obs", "var", "obsm", "varm", "obsp", "varp", "uns") if k in f}
            shape = tuple(int(v) for v in (node.attrs["shape"] if encoding == "csr_matrix" else node.shape))
            indptr = node["indptr"][()] if encoding == "csr_matrix" else None
            dtype = node["data"].dtype if encoding == "csr_matrix" else node.dtype
        adata = ad.AnnData(**parts)
    except Exception:  # noqa: BLE001 (any unreadable part: read whole, which says what is wrong in one line)
        return None
    adata.obs_names = adata.obs_names.astype(str)
    adata.var_names = adata.var_names.astype(str)
    if adata.shape != shape or len(shape) != 2:
        return None
    key = "X" if layer in (None, "X") else f"layers/{layer}"

    def block(a, b):
        with h5py.File(path, "r") as fh:
            return sp.csr_matrix(read_rows(fh[key], a, b, indptr))
    return adata, Counts(adata.obs_names, adata.var_names, block, shape[0], dtype)


def checked_blocks(counts: Counts, rows: np.ndarray, cols: np.ndarray | None, path, what: str,
                   integer: bool = True) -> Iterator[sp.csr_matrix]:
    """The CSR blocks of `Counts.blocks` (``rows`` x ``cols``, the file's dtype), checked as
    `scfactor.core.io.validate_counts` checks the whole matrix, with the same one-line `InputError`: an empty
    selection or a non-numeric dtype before the first block; NaN, negative or (with ``integer``) fractional values
    after the last one, so that a caller building a result from the blocks never keeps a partial one."""
    shape = (len(rows), len(counts.var_names) if cols is None else len(cols))
    if 0 in shape:
        raise io.InputError(path, f"{what} is empty ({shape[0]} cells x {shape[1]} genes)")
    io.check_counts_dtype(counts.dtype, path, what)
    bad = np.zeros(3, np.int64)
    for _, block in counts.blocks(rows, cols, dtype=None):
        bad += io.count_bad_values(io.matrix_values(block), integer)
        yield block
    io.raise_bad_counts(bad, path, what)


def validate_blocks(counts: Counts, path, what: str) -> None:
    """`scfactor.core.io.validate_counts` of a file's counts, block by block (the same one-line errors)."""
    for _ in checked_blocks(counts, np.arange(counts.n_obs), None, path, what):
        pass
