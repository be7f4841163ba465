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


def _update(h, value) -> None:
    if is_sparse(value):
        value = value.tocsr()
        for a in (np.asarray(value.shape, np.int64), value.indptr.astype(np.int64),
                  value.indices.astype(np.int64), value.data.astype(np.float64)):
            h.update(np.ascontiguousarray(a).tobytes())
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
    """A loaded checkpoint: arrays by name, completed epochs, metadata."""

    arrays: dict
    epoch: int
    meta: dict


def save(path, arrays: dict, *, fingerprint: str, epoch: int, meta: dict | None = None) -> None:
    """Write a checkpoint atomically (a killed job leaves the previous one intact); upload it when its folder
    mirrors object storage."""
    header = json.dumps({"fingerprint": fingerprint, "epoch": int(epoch), "meta": meta or {}})
    with atomic_output(path) as tmp:
        np.savez(tmp, **{_HEADER: np.array(header)}, **{k: np.asarray(v) for k, v in arrays.items()})
    remote.push(path)


def load(path, fingerprint: str) -> Checkpoint | None:
    """The checkpoint at ``path`` when it belongs to this run; None when absent, stale or unreadable."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            header = json.loads(str(z[_HEADER]))
            arrays = {k: z[k] for k in z.files if k != _HEADER}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        LOG.warning("discarding unreadable checkpoint %s (%s); starting over", p, exc.__class__.__name__)
        return None
    if header.get("fingerprint") != fingerprint:
        LOG.warning("discarding checkpoint %s: made with other input data or settings; starting over", p)
        return None
    return Checkpoint(arrays, int(header["epoch"]), header.get("meta", {}))
