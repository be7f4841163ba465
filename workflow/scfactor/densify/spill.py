"""The training matrix on disk (issue 19: atlas scale): a CSR matrix whose values and column indices live in two
unlinked temporary files, read back a few rows at a time.

`SpilledCSR.write` takes the training matrix as consecutive blocks of rows (as densify hides the held-out
entries of each block it reads) and keeps only the row pointers in memory (8 bytes per cell). Training reads its
tiles' rows (`SpilledCSR.__getitem__` with an array of rows: one ``preadv`` per row and file), every other pass
(size factors, gene biases, the SVD baseline, the fingerprint, the output's counts) a block of consecutive rows
at a time (`row_chunks`). So the counts no longer grow the job's memory with the cells; the files are 8 bytes
per stored training count (float32 value, int32 column), in ``$TMPDIR`` (set by Snakemake from the job's
``tmpdir`` resource; on a cluster, node-local scratch: ``docs/cluster.md``). They are unlinked as soon as they
are opened: nothing is left behind, even by a killed job. A matrix of at most `IN_MEMORY_MAX` stored entries is
read back into memory instead (as fast as scipy's row slicing; the bundled data sets stay there).

A `SpilledCSR` answers what densify asks of a scipy CSR matrix: ``shape``, ``nnz``, ``dtype``, ``indptr``, rows
by slice or index array (a scipy CSR matrix back), and `hash_into` (the bytes `scfactor.core.checkpoint`'s
fingerprint hashes for a CSR matrix, so a checkpoint fingerprints the same either way).
"""

from __future__ import annotations

import os
import tempfile
from typing import Iterable, Iterator

import numpy as np
import scipy.sparse as sp

from ..core.csr_stack import row_blocks
from ..core.errors import ScfactorError

#: stored entries up to which the training matrix is read back into memory (512 MiB of values and indices)
IN_MEMORY_MAX = 1 << 26
#: stored entries per block of a sequential pass (`row_chunks`)
CHUNK_ENTRIES = 1 << 22


class SpilledCSR:
    """A float32 CSR matrix (sorted column indices, no explicit zeros) kept in two unlinked files."""

    def __init__(self, shape, indptr: np.ndarray, fds: tuple[int, int] | None):
        self.shape = (int(shape[0]), int(shape[1]))
        self.indptr = indptr
        self.dtype = np.dtype(np.float32)
        self._fds = fds
        self._csr = None  # the whole matrix, when it is held in memory

    @classmethod
    def write(cls, blocks: Iterable[sp.csr_matrix], n_cols: int, directory=None,
              in_memory_max: int | None = None) -> "SpilledCSR":
        """The matrix of ``blocks`` (canonical CSR blocks of ``n_cols`` columns) one below the other, written to
        two unlinked files in ``directory`` (default ``$TMPDIR``); read back into memory when it holds at most
        ``in_memory_max`` stored entries (default `IN_MEMORY_MAX`). A failed write (a full disk) is a one-line
        `ScfactorError`."""
        where = directory or tempfile.gettempdir()
        fds = []
        try:
            for suffix in ("data", "indices"):
                fd, name = tempfile.mkstemp(prefix="scfactor-densify-train-", suffix=f".{suffix}", dir=where)
                os.unlink(name)
                fds.append(fd)
            ends, nnz, n_rows = [np.zeros(1, np.int64)], 0, 0
            for block in blocks:
                if block.shape[1] != n_cols:
                    raise ValueError(f"a block has {block.shape[1]} columns, not {n_cols}")
                _write_all(fds[0], np.ascontiguousarray(block.data, np.float32))
                _write_all(fds[1], np.ascontiguousarray(block.indices, np.int32))
                ends.append(block.indptr[1:].astype(np.int64) + nnz)
                nnz, n_rows = nnz + block.nnz, n_rows + block.shape[0]
        except OSError as exc:
            _close(fds)
            raise ScfactorError(f"cannot write the training matrix to {where}: {exc.strerror or exc}; "
                                "free disk space there or set TMPDIR to a larger folder") from None
        except BaseException:
            _close(fds)
            raise
        x = cls((n_rows, n_cols), np.concatenate(ends), tuple(fds))
        if nnz <= (IN_MEMORY_MAX if in_memory_max is None else in_memory_max):
            x._csr = x[0:n_rows]
            _close(fds)
            x._fds = None
        return x

    @property
    def nnz(self) -> int:
        """Stored entries."""
        return int(self.indptr[-1])

    @property
    def in_memory(self) -> bool:
        """Whether the matrix was read back into memory (`IN_MEMORY_MAX`)."""
        return self._csr is not None

    def __getitem__(self, rows) -> sp.csr_matrix:
        """Rows ``rows`` (a slice with step 1, or an array of row numbers in any order) as a scipy CSR matrix."""
        if self._csr is not None:
            return self._csr[rows]
        if isinstance(rows, slice):
            a, b, step = rows.indices(self.shape[0])
            if step != 1:
                raise ValueError("row slices must have step 1")
            b = max(a, b)
            s0, s1 = int(self.indptr[a]), int(self.indptr[b])
            data, indices = self._read([s0], [s1 - s0])
            indptr = self.indptr[a:b + 1] - s0
        else:
            rows = np.asarray(rows, dtype=np.int64).ravel()
            starts, lengths = self.indptr[rows], self.indptr[rows + 1] - self.indptr[rows]
            data, indices = self._read(starts, lengths)
            indptr = np.concatenate([[0], np.cumsum(lengths)])
        index_dtype = np.int32 if data.size <= np.iinfo(np.int32).max else np.int64
        x = sp.csr_matrix((data, indices.astype(index_dtype, copy=False), indptr.astype(index_dtype)),
                          shape=(len(indptr) - 1, self.shape[1]), copy=False)
        x.has_canonical_format = True
        return x

    def _read(self, starts, lengths) -> tuple[np.ndarray, np.ndarray]:
        """Values and column indices of the stored-entry ranges ``[start, start + length)``, concatenated."""
        total = int(np.sum(lengths))
        data, indices = np.empty(total, np.float32), np.empty(total, np.int32)
        pos = 0
        for s, n in zip(np.asarray(starts).tolist(), np.asarray(lengths).tolist()):
            if n:
                _read_into(self._fds[0], data[pos:pos + n], 4 * s)
                _read_into(self._fds[1], indices[pos:pos + n], 4 * s)
                pos += n
        return data, indices

    def hash_into(self, h, update_as) -> None:
        """Feed ``h`` the bytes `scfactor.core.checkpoint.fingerprint` hashes for the same scipy CSR matrix
        (shape, then row pointers, column indices and values; ``update_as(h, array, dtype)``), a chunk at a time."""
        h.update(np.asarray(self.shape, np.int64).tobytes())
        update_as(h, self.indptr, np.int64)
        for which, dtype in ((1, np.int64), (0, np.float64)):
            for a, b, block in row_chunks(self):
                update_as(h, (block.data, block.indices)[which], dtype)

    def close(self) -> None:
        """Release the files (their space is freed: they were unlinked) or the in-memory arrays."""
        _close(self._fds or ())
        self._fds, self._csr = None, None
        self.indptr = np.zeros(1, np.int64)
        self.shape = (0, self.shape[1])

    def __del__(self):
        _close(self._fds or ())


def is_spilled(x) -> bool:
    """Whether ``x`` is a `SpilledCSR` (read by rows from disk) rather than a matrix in memory."""
    return isinstance(x, SpilledCSR)


def row_chunks(x, entries: int | None = None) -> Iterator[tuple[int, int, sp.csr_matrix]]:
    """``(a, b, rows a:b as CSR)`` covering every row of ``x`` (a scipy CSR matrix or a `SpilledCSR`) in order,
    about ``entries`` (default `CHUNK_ENTRIES`) stored entries each (`scfactor.core.csr_stack.row_blocks`)."""
    for a, b in row_blocks(x.indptr, CHUNK_ENTRIES if entries is None else entries):
        yield a, b, x[a:b]


def _write_all(fd: int, a: np.ndarray) -> None:
    view = memoryview(a).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _read_into(fd: int, a: np.ndarray, offset: int) -> None:
    view = memoryview(a).cast("B")
    while view:
        got = os.preadv(fd, [view], offset)
        if got <= 0:
            raise OSError(f"the spilled training matrix ended early (at byte {offset})")
        view, offset = view[got:], offset + got


def _close(fds) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
