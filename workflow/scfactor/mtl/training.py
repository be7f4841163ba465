"""What both MTL engines share: initial weights, seeds, the epoch loop with checkpoints, test R2, weight files.

An engine (`scfactor.mtl.model.TFEngine`, `scfactor.mtl.model_np.NumpyEngine`) is built from the initial
weights and offers ``step(idx) -> (loss, mse, trace_norm)`` (one Adam step on a genes x batch index
array), ``state()`` / ``restore(arrays)`` (weights ``var/<name>`` and Adam state ``adam/...``, the
checkpoint's arrays), ``predict(idx) -> genes x n`` and ``model`` (what `fit`'s callers get back). This
module imports numpy only: the numpy engine's shard process never imports TensorFlow.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..core import checkpoint
from ..core.log import LOG, Progress
from .data import ShardData, epoch_batches, r2_score

HIDDEN = (64, 32, 16)
UNFOLD_AXES = {"task": 0, "input": 1, "output": 2}
#: the checkpoint file inside a shard's checkpoint folder
CHECKPOINT = "state.npz"


def initial_weights(n_genes: int, n_tfs: int, seed: int, hidden=HIDDEN, dtype="float32") -> dict:
    """Glorot-uniform kernels and zero biases of the gene-batched network, in the variables' fixed order."""
    rng = np.random.default_rng(seed)

    def glorot(shape, fan_in, fan_out):
        lim = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-lim, lim, size=shape).astype(dtype)

    dims = (n_tfs,) + tuple(hidden)
    init = {"w0": glorot((n_genes, n_tfs, 5), 5, 1), "c0": np.zeros((n_genes, n_tfs), dtype)}
    for i in range(len(hidden)):
        init[f"W{i + 1}"] = glorot((n_genes, dims[i], dims[i + 1]), dims[i], dims[i + 1])
        init[f"b{i + 1}"] = np.zeros((n_genes, dims[i + 1]), dtype)
    init["w_out"] = glorot((n_genes, dims[-1], 1), dims[-1], 1)
    init["b_out"] = np.zeros((n_genes, 1), dtype)
    return init


def child_seeds(seed_seq: np.random.SeedSequence):
    """(init, data) seeds: the children ``seed_seq.spawn(2)`` gives on a fresh sequence, without spawn's
    side effect on ``seed_seq`` (a second call with the same object would otherwise train from other seeds)."""
    return tuple(np.random.SeedSequence(seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, i),
                                        pool_size=seed_seq.pool_size) for i in range(2))


def shard_fingerprint(shard: ShardData, settings: dict) -> str:
    """Digest of the shard's data (genes, expression, targets, splits, features) and ``settings``."""
    return checkpoint.fingerprint(shard.genes, shard.expr, shard.A, shard.C, np.nan_to_num(shard.y),
                                  *shard.train, *shard.test, settings=settings)


def engine_state(model, opt) -> dict:
    """An engine's checkpoint arrays: the model's weights as ``var/<name>`` plus the optimizer's state."""
    out = {f"var/{k}": v for k, v in model.arrays().items()}
    out.update(opt.state())
    return out


def fit(shard: ShardData, opts, make_engine, *, seed_seq: np.random.SeedSequence, engine_name: str,
        checkpoint_dir=None, log_every: int = 1):
    """Train an engine on a shard; returns (engine, history list of per-epoch dicts).

    ``make_engine(init_weights)``: the engine. ``opts``: the training settings (``epochs``, ``batch_size``,
    ``learning_rate``, ``lam``, ``l1``, ``unfold_axis``, ``checkpoint_seconds``; `scfactor.mtl.cli.TRAIN_SHARD`
    options). Per epoch: the notebook's resampling (`epoch_batches`, rng from ``seed_seq`` and the epoch
    number, so that a resumed run draws the same batches), Adam steps, then, once ``checkpoint_seconds`` of
    wall time have passed since the start or the last checkpoint, a checkpoint (`scfactor.core.checkpoint`) in
    ``checkpoint_dir``, resumed from when it belongs to this shard, these settings and this engine
    (logs "resuming from epoch N"). The interval is not part of the fingerprint: a resumed run gives the same
    result whatever epoch it resumes from. History: loss, mse, trace norm, wall and CPU seconds per epoch.
    """
    init_seed, data_seed = child_seeds(seed_seq)
    settings = dict(epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.learning_rate, lam=opts.lam,
                    l1=opts.l1, unfold=opts.unfold_axis, hidden=list(HIDDEN), seed=str(seed_seq.entropy),
                    spawn=str(seed_seq.spawn_key), engine=engine_name)
    fp = shard_fingerprint(shard, settings)
    engine = make_engine(initial_weights(shard.n_genes, shard.n_tfs, seed=init_seed.generate_state(1)[0]))
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    start = 0
    if ckpt is not None:
        state = checkpoint.load(ckpt, fp)
        if state is not None:
            engine.restore(state.arrays)
            start = state.epoch
            LOG.info("resuming from epoch %d (checkpoint %s)", start, ckpt)
    history = []
    progress = Progress("epoch", opts.epochs, start=start)
    saved = time.monotonic()
    for ep in range(start, opts.epochs):
        rng = np.random.default_rng(np.random.SeedSequence(data_seed.entropy, spawn_key=(*data_seed.spawn_key, ep)))
        batches = epoch_batches(shard.train, opts.batch_size, rng)
        t0, c0 = time.perf_counter(), time.process_time()
        lo = np.mean([engine.step(idx) for idx in batches], axis=0)
        history.append(dict(epoch=ep + 1, loss=lo[0], mse=lo[1], trace_norm=lo[2], seconds=time.perf_counter() - t0,
                            cpu_seconds=time.process_time() - c0))
        if (ep + 1) % log_every == 0 or ep + 1 == opts.epochs:
            progress.log(ep + 1, loss=float(lo[0]), mse=float(lo[1]), trace_norm=float(lo[2]),
                         batches=len(batches))
        if ckpt is not None and time.monotonic() - saved >= opts.checkpoint_seconds:
            checkpoint.save(ckpt, engine.state(), fingerprint=fp, epoch=ep + 1)
            saved = time.monotonic()
    return engine, history


def test_index(shard: ShardData) -> np.ndarray:
    """Per gene its test cells, padded with cell 0 to the longest list (genes x n, int32)."""
    n = max(len(t) for t in shard.test)
    idx = np.zeros((shard.n_genes, n), dtype=np.int32)
    for k, t in enumerate(shard.test):
        idx[k, :len(t)] = t
    return idx


def predict_test(predict, shard: ShardData, chunk: int = 2048):
    """Per gene: (y_true, y_pred) on its test cells; ``predict(idx)`` is called on cell chunks (bounded memory)."""
    idx = test_index(shard)
    preds = np.concatenate([predict(idx[:, s:s + chunk]) for s in range(0, idx.shape[1], chunk)], axis=1)
    return [(shard.y[k, t], preds[k, :len(t)]) for k, t in enumerate(shard.test)]


def test_r2(predict, shard: ShardData) -> np.ndarray:
    """Test R2 per gene (velocities standardised with training stats; R2 is unaffected)."""
    return np.array([r2_score(y, p) for y, p in predict_test(predict, shard)])


def save_weights(path, arrays: dict, genes, attrs: dict) -> None:
    """Final weights (``arrays``: name -> genes x ...) as ``.npz`` plus ``genes`` and ``attrs``.

    Written with fixed zip timestamps so that the same weights always give the same bytes; stored without
    compression (trained float32 weights deflate by ~6%, for ~1% of a paper-size shard's CPU time).
    """
    import io as _io
    import zipfile

    from ..core.io import atomic_output
    out = {"genes": np.array([str(g) for g in genes]), "attrs": np.array(json.dumps(attrs, sort_keys=True))}
    out.update(arrays)
    with atomic_output(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            for k, a in out.items():
                buf = _io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
                info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                z.writestr(info, buf.getvalue())
