"""Rows of a preprocessed ``.h5ad`` read from the file in row ranges, for the minibatch fit (never the whole matrix).

`CountRows` opens the file once (h5py), reads ``obs`` / ``var`` and the simulation truth when present, and
returns the selected genes of any row range (`scfactor.preprocess.counts.read_rows`, the reader the preprocess
and densify steps stream with) as a dense float32 array, checked for NaN / negative values.

`SpooledRows` serves the same arrays from an uncompressed copy of the selected genes written once to scratch
files (`spool`): an ``.h5ad`` matrix is usually gzip-compressed in chunks of a few thousand values, and the
minibatch fit reads every epoch's chunks as many short row ranges, each decompressing the file chunks it touches.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ..core import io
from ..core.errors import InputError
from ..preprocess import contract
from ..preprocess.counts import read_rows


class CountRows:
    """Row ranges of layer ``layer`` (genes ``genes``) of a backed ``.h5ad``; `read` is the minibatch fit's source."""

    def __init__(self, path, layer: str, genes: str):
        import anndata as ad
        import h5py
        self.path, self.what = str(io.require_file(path)), layer or "X"
        try:
            self.file = h5py.File(self.path, "r")
            self.obs = ad.io.read_elem(self.file["obs"])
            self.var = ad.io.read_elem(self.file["var"])
        except Exception as exc:  # noqa: BLE001 - one line naming the file
            raise InputError(path, f"cannot read h5ad: {str(exc).splitlines()[0]}") from None
        key = "X" if layer in (None, "X") else f"layers/{layer}"
        if key not in self.file:
            have = ", ".join(self.file["layers"]) if "layers" in self.file else ""
            raise InputError(path, f"has no layer {layer!r} (layers: {have or 'none'})")
        self.node = self.file[key]
        self.indptr = None  # dense: rows read as array slices
        if not isinstance(self.node, h5py.Dataset):
            kind = str(self.node.attrs.get("encoding-type", ""))
            if kind != "csr_matrix":
                raise InputError(path, f"layer {layer!r} is stored as {kind or 'unknown'}; the minibatch fit reads "
                                       "CSR rows")
            self.indptr = self.node["indptr"][:]  # one number per cell; the values are read per row range
        io.check_counts_dtype((self.node if self.indptr is None else self.node["data"]).dtype, path, self.what)
        self.mask = contract.gene_mask(self.var, genes, path)
        self.var = self.var.loc[self.mask]
        self.shape = (len(self.obs), int(self.mask.sum()))
        if 0 in self.shape:
            raise InputError(path, f"{self.what} is empty ({self.shape[0]} cells x {self.shape[1]} genes)")

    def rows(self, start: int, stop: int):
        """Rows ``start:stop``, selected genes, as stored (CSR or dense, the file's dtype); `InputError` for NaN or
        negative values."""
        block = read_rows(self.node, start, stop, self.indptr)
        if not self.mask.all():
            block = block[:, self.mask]
        bad = io.count_bad_values(io.matrix_values(block), integer=False)
        io.raise_bad_counts(bad, self.path, f"{self.what} (rows {start}-{stop})")
        return block

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop``, selected genes, dense float32; `InputError` for NaN or negative values."""
        block = self.rows(start, stop)
        return np.asarray(block if self.indptr is None else block.toarray(), dtype=np.float32)

    def truth(self):
        """(theta_true, beta_true, blocks) when the file holds a block simulation's truth, else None."""
        import anndata as ad
        f = self.file
        if "theta_true" in f.get("obsm", {}) and "beta_true" in f.get("varm", {}) and "block" in self.obs:
            return (np.asarray(ad.io.read_elem(f["obsm/theta_true"])),
                    np.asarray(ad.io.read_elem(f["varm/beta_true"]))[self.mask],
                    self.obs["block"].astype(str).to_numpy())
        return None

    def close(self) -> None:
        """Close the file."""
        self.file.close()


#: rows per read of the source while spooling (contiguous reads: each file chunk is decompressed once)
SPOOL_ROWS = 10_000


def _pread(fd: int, dtype, count: int, offset: int) -> np.ndarray:
    """``count`` values of ``dtype`` at element ``offset`` of the file ``fd`` (however many reads that takes)."""
    size = np.dtype(dtype).itemsize
    buf = bytearray(count * size)
    view, done = memoryview(buf), 0
    while done < len(buf):
        got = os.preadv(fd, [view[done:]], offset * size + done)
        if got == 0:
            raise OSError(f"scratch file ended {len(buf) - done} bytes early")
        done += got
    return np.frombuffer(buf, dtype=dtype)


class SpooledRows:
    """The selected genes of every row of ``src`` (a `CountRows`) as CSR in two unnamed scratch files (float32
    values, int32 gene indices; row pointers in memory), read by row range exactly as ``src.read`` would.

    Written in one pass over ``src`` in `SPOOL_ROWS`-row ranges, which checks every value. Costs 8 bytes of disk
    per stored value (in ``directory``, default: the temporary directory, ``TMPDIR``) and 8 bytes of memory per
    cell; the operating system caches the files, so a read is a copy, not a decompression. The files have no
    name (unlinked at creation): they disappear on `close` or when the process ends, however it ends.
    """

    def __init__(self, src, directory=None):
        import scipy.sparse as sp
        n, self.m = src.shape
        self.shape = src.shape
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        self._values = tempfile.TemporaryFile(dir=directory)
        try:
            self._genes = tempfile.TemporaryFile(dir=directory)
        except BaseException:
            self._values.close()
            raise
        try:
            for a in range(0, n, SPOOL_ROWS):
                b = min(n, a + SPOOL_ROWS)
                block = sp.csr_matrix(src.rows(a, b))
                block.sum_duplicates()
                self._values.write(np.ascontiguousarray(block.data, dtype=np.float32).tobytes())
                self._genes.write(np.ascontiguousarray(block.indices, dtype=np.int32).tobytes())
                self.indptr[a + 1:b + 1] = self.indptr[a] + block.indptr[1:]
            self._values.flush(), self._genes.flush()
        except BaseException:
            self.close()
            raise

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop``, selected genes, dense float32 (the values ``src.read`` returns)."""
        import scipy.sparse as sp
        p0, p1 = int(self.indptr[start]), int(self.indptr[stop])
        values = _pread(self._values.fileno(), np.float32, p1 - p0, p0)
        genes = _pread(self._genes.fileno(), np.int32, p1 - p0, p0)
        block = sp.csr_matrix((values, genes, self.indptr[start:stop + 1] - p0), shape=(stop - start, self.m))
        return block.toarray()

    def close(self) -> None:
        """Close (and so delete) the scratch files."""
        self._values.close()
        self._genes.close()


def spool(src, directory=None):
    """`SpooledRows` of ``src``, or ``src`` itself (with a warning) when the scratch files cannot be written
    (no space, no permission): the fit then reads the ``.h5ad`` directly, only more slowly."""
    import time

    from ..core.log import LOG
    try:
        t0 = time.perf_counter()
        rows = SpooledRows(src, directory)
        LOG.info("copied %d stored values of %d cells x %d genes to scratch files in %.1f s", rows.indptr[-1],
                 *rows.shape, time.perf_counter() - t0)
        return rows
    except OSError as exc:
        LOG.warning("could not copy the counts to scratch files (%s): reading %s directly, which is slower "
                    "for a compressed file", exc, src.path)
        return src
