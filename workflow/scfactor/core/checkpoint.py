"""Training checkpoints in one format: an ``.npz`` of named arrays plus a JSON header.

The header holds a fingerprint of the input data and of every setting that changes the result (epochs
included), the number of completed epochs and free metadata (e.g. the loss trace). A checkpoint is reused
only when its fingerprint matches; a stale, corrupt or unreadable one is discarded with a warning. A
checkpoint in a folder staged from object storage (`scfactor.core.remote.stage`) is uploaded as soon as it
is written, so that a job restarted on another machine resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import remote
from .io import atomic_output, is_sparse
from .log import LOG

_HEADER = "__checkpoint__"


#: elements hashed per update of a sparse matrix's arrays (the digest is that of the whole array)
_HASH_CHUNK = 1 << 20


def _update_as(h, a: np.ndarray, dtype) -> None:
    """Hash ``a`` cast to ``dtype`` a chunk at a time (no cast copy of the whole array)."""
    for i in range(0, a.size, _HASH_CHUNK):
        h.update(np.ascontiguousarray(a[i:i + _HASH_CHUNK], dtype=dtype).tobytes())


def _update(h, value) -> None:
    if hasattr(value, "hash_into"):  # a matrix kept on disk hashes as the same scipy CSR matrix would
        value.hash_into(h, _update_as)
        return
    if is_sparse(value):
        value = value.tocsr()
        h.update(np.asarray(value.shape, np.int64).tobytes())
        for a, dtype in ((value.indptr, np.int64), (value.indices, np.int64), (value.data, np.float64)):
            _update_as(h, a, dtype)
        return
    a = np.asarray(value)
    if a.dtype.kind in "OUS":
        h.update("\0".join(map(str, a.ravel())).encode())
    else:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())


def fingerprint(*data, settings: dict) -> str:
    """A short digest of the input ``data`` (arrays, sparse matrices, name lists) and ``settings``."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for d in data:
        _update(h, d)
    return h.hexdigest()[:20]


@dataclass
class Checkpoint:
    """A loaded checkpoint: arrays by name, completed epochs, metadata (and the fingerprint it was saved with)."""

    arrays: dict
    epoch: int
    meta: dict
    fingerprint: str = ""


def save(path, arrays: dict, *, fingerprint: str, epoch: int, meta: dict | None = None) -> None:
    """Write a checkpoint atomically (a killed job leaves the previous one intact); upload it when its folder
    mirrors object storage."""
    header = json.dumps({"fingerprint": fingerprint, "epoch": int(epoch), "meta": meta or {}})
    with atomic_output(path) as tmp:
        np.savez(tmp, **{_HEADER: np.array(header)}, **{k: np.asarray(v) for k, v in arrays.items()})
    remote.push(path)


def read(path, rows: tuple[int, int] | None = None, sliced=()) -> Checkpoint:
    """The checkpoint at ``path`` whatever its fingerprint; raises (OSError, KeyError, ValueError, EOFError,
    zipfile.BadZipFile) on an unreadable file. With ``rows=(start, stop)`` the arrays named in ``sliced``
    are read as those rows only (seeking in the file: a job that needs a few rows of a large array, e.g.
    its cells' embeddings, never holds the whole array)."""
    arrays = {}
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():
            key = member.removesuffix(".npy")
            with z.open(member) as f:
                if rows is not None and key in sliced:
                    arrays[key] = _read_rows(f, *rows)
                else:
                    arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
    header = json.loads(str(arrays.pop(_HEADER)))
    return Checkpoint(arrays, int(header["epoch"]), header.get("meta", {}), header.get("fingerprint", ""))


def _read_rows(f, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the C-ordered ``.npy`` array in the open file ``f``."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    shape, fortran, dtype = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}[version](f)
    if fortran or not shape or dtype.hasobject:
        raise ValueError("only C-ordered arrays of numbers can be read by rows")
    start, stop = min(max(start, 0), shape[0]), min(max(stop, 0), shape[0])
    row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    f.seek(f.tell() + start * row)
    n = max(stop - start, 0)
    data = f.read(n * row)
    if len(data) != n * row:
        raise EOFError("truncated array")
    return np.frombuffer(data, dtype=dtype).reshape((n, *shape[1:]))


def load(path, fingerprint: str) -> Checkpoint | None:
    """The checkpoint at ``path`` when it belongs to this run; None when absent, stale or unreadable."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        ck = read(p)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        LOG.warning("discarding unreadable checkpoint %s (%s); starting over", p, exc.__class__.__name__)
        return None
    if ck.fingerprint != fingerprint:
        LOG.warning("discarding checkpoint %s: made with other input data or settings; starting over", p)
        return None
    return ck
