"""The files of densify's fan-out (``densify.predict_shards`` > 1; issue 19, atlas scale).

Training needs every cell, prediction does not: one job trains and writes the **model file**
(`save_model`: the final weights and batch-norm statistics, the cells' log size factors, the trace, in the
`scfactor.core.checkpoint` format, fingerprinted by the training matrix and the settings); K jobs each
predict a contiguous range of whole prediction blocks (`shard_cells`) from their cells' rows of the model
file only (`load_model`) and write a **shard** (`write_shard`: a float32 ``.npy`` written block by block);
a gather job streams the shards back as the same blocks (`shard_blocks`) into
`scfactor.densify.stream.write_densified`, so the output is byte for byte the single job's.
"""

from __future__ import annotations

import zipfile
from dataclasses import asdict

import numpy as np

from ..core import checkpoint, io
from ..core.errors import InputError
from .train import NOT_TRAINING, FitResult, cells_per_block

#: per-cell arrays of the model file: a prediction shard reads only its cells' rows of them
CELL_ARRAYS = ("gmf_cell", "mlp_cell", "offset")


def shard_cells(n_cells: int, n_genes: int, predict_block: int, shards: int, shard: int) -> tuple[int, int]:
    """Cells ``(start, stop)`` of prediction shard ``shard`` of ``shards``: a contiguous, near-equal share of
    the whole prediction blocks (`scfactor.densify.train.predict_blocks`); empty when there are fewer blocks
    than shards. The shards cover every cell once, in order."""
    per = cells_per_block(predict_block, n_genes)
    blocks = -(-n_cells // per)
    first, last = shard * blocks // shards, (shard + 1) * blocks // shards
    return min(first * per, n_cells), min(last * per, n_cells)


def settings_digest(opts) -> str:
    """Digest of every option that changes the trained model (the strategy left out: any job may predict)."""
    return checkpoint.fingerprint(settings={k: v for k, v in asdict(opts).items() if k not in NOT_TRAINING})


def model_fingerprint(train, opts) -> str:
    """Fingerprint of the model file: the training matrix (the input minus its held-out entries) and the settings."""
    return checkpoint.fingerprint(train, settings={"settings": settings_digest(opts)})


def save_model(path, result: FitResult, train, opts) -> None:
    """Write the trained model of ``result`` (weights, batch-norm statistics, log size factors, trace) to ``path``."""
    arrays = {**result.model.get_state(), "offset": np.asarray(result.offset, np.float32)}
    meta = {"trace": result.trace, "seconds": result.seconds, "samples_per_s": result.samples_per_s,
            "cells": int(train.shape[0]), "genes": int(train.shape[1]), "settings": settings_digest(opts)}
    checkpoint.save(path, arrays, fingerprint=model_fingerprint(train, opts), epoch=opts.epochs, meta=meta)


def load_model(path, opts, rows: tuple[int, int] | None = None, train=None) -> checkpoint.Checkpoint:
    """The model file at ``path``, checked against ``opts`` (and ``train``, when given); with ``rows``, only
    those cells' rows of the per-cell arrays are read. `InputError` on a missing, unreadable or foreign file."""
    io.require_file(path)
    try:
        ck = checkpoint.read(path, rows=rows, sliced=CELL_ARRAYS)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(path, f"is not a densify model file ({exc.__class__.__name__}: {exc})") from None
    if ck.meta.get("settings") != settings_digest(opts):
        raise InputError(path, "was trained with other densify settings; rerun densify_train")
    if train is not None and ck.fingerprint != model_fingerprint(train, opts):
        raise InputError(path, "was trained on other input data; rerun densify_train")
    return ck


def fit_record(ck: checkpoint.Checkpoint) -> FitResult:
    """The training record (trace, seconds, samples/s) of a model file, as the single job's `FitResult` (no model)."""
    m = ck.meta
    return FitResult(None, None, m["trace"], m["seconds"], m["samples_per_s"])


def write_shard(path, blocks, n_cells: int, n_genes: int) -> None:
    """Write ``blocks`` (``(start, stop, float32 cells x genes)``, consecutive from 0) to ``path`` atomically as
    one float32 ``n_cells x n_genes`` ``.npy``, a block at a time."""
    fmt = np.lib.format
    done = 0
    with io.atomic_output(path) as tmp, open(tmp, "wb") as f:
        fmt.write_array_header_1_0(f, {"descr": fmt.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                                       "shape": (int(n_cells), int(n_genes))})
        for start, stop, values in blocks:
            if start != done or values.shape != (stop - start, n_genes):
                raise ValueError(f"shard blocks must be consecutive cells x {n_genes} genes")
            f.write(np.ascontiguousarray(values, dtype=np.float32).tobytes())
            done = stop
        if done != n_cells:
            raise ValueError(f"the blocks covered {done} of {n_cells} cells")


def shard_blocks(paths, n_cells: int, n_genes: int, predict_block: int):
    """Yield the prediction blocks ``(start, stop, values)`` of the whole matrix from the shard files ``paths``
    (shard k of len(paths) at ``paths[k]``), each block read from its (memory-mapped) shard in turn."""
    per = cells_per_block(predict_block, n_genes)
    for k, path in enumerate(paths):
        start, stop = shard_cells(n_cells, n_genes, predict_block, len(paths), k)
        try:
            shard = np.load(io.require_file(path), mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise InputError(path, f"is not a prediction shard ({exc.__class__.__name__}: {exc})") from None
        if shard.dtype != np.float32 or shard.shape != (stop - start, n_genes):
            raise InputError(path, f"holds {shard.dtype} {shard.shape} predictions; shard {k} of {len(paths)} "
                                   f"should be float32 {(stop - start, n_genes)}")
        for s in range(start, stop, per):
            e = min(s + per, stop)
            yield s, e, np.array(shard[s - start:e - start])
        del shard
