"""Training, checkpoint/resume and block-wise dense prediction for `scfactor.models.neumf`.

`fit` runs the whole recipe on a CSR count matrix: optional NCF pretraining of a GMF and an MLP
model, then the chosen architecture, each phase checkpointed after every epoch to
``<checkpoint_dir>/<phase>.npz`` (weights, batch-norm statistics, Adam moments, step, loss trace
and a fingerprint of data + settings). A rerun with the same fingerprint resumes after the last
saved epoch ("resuming from epoch N") and, because batches and dropout masks are seeded by
(seed, epoch, step), ends with the same weights as an uninterrupted run. `predict_dense` fills a
cells x genes float32 array a block of cells at a time.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..core.log import LOG
from .neumf import COUNT_LOSSES, NeuMF, gene_bias_init, init_from_pretrained
from .pairs import PairStream


@dataclass
class FitConfig:
    """Every setting that changes the trained model (all of it goes into the fingerprint)."""

    arch: str = "neumf"
    loss: str = "nb"
    emb_dim: int = 20
    layers: tuple = (64, 32, 16, 8)
    dropout: float = 0.2
    bn_layers: int = 2
    epochs: int = 10
    batch_size: int = 8192
    lr: float = 0.003
    zero_keep: float = 1.0
    num_neg: int = 4
    pretrain_epochs: int = 0
    seed: int = 0
    chunk_entries: int = 1 << 20
    jit: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class FitResult:
    """A trained model and its per-phase training trace."""

    model: NeuMF
    offset: np.ndarray
    trace: dict
    seconds: float
    samples_per_s: float


def size_factors(x) -> np.ndarray:
    """Library size / mean library size per cell (1 for cells with no counts)."""
    lib = np.asarray(sp.csr_matrix(x).sum(axis=1), dtype=np.float64).ravel()
    mean = lib[lib > 0].mean() if (lib > 0).any() else 1.0
    return np.where(lib > 0, lib / mean, 1.0)


def fingerprint(x, cfg: FitConfig, phase: str) -> str:
    """Hash of the training matrix and the settings of one phase (a checkpoint is reused only on a match)."""
    x = sp.csr_matrix(x)
    h = hashlib.sha256()
    for a in (np.asarray(x.shape, np.int64), x.indptr.astype(np.int64), x.indices.astype(np.int64),
              x.data.astype(np.float64)):
        h.update(np.ascontiguousarray(a).tobytes())
    d = asdict(cfg)
    d.pop("epochs")  # more epochs continue the same run
    d["phase"] = phase
    h.update(json.dumps(d, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _save_checkpoint(path: Path, model: NeuMF, epoch: int, trace: list, fp: str) -> None:
    """Write a phase checkpoint atomically (`scfactor.io.atomic_output`)."""
    from ..core.io import atomic_output
    state = model.get_state()
    meta = json.dumps({"epoch": epoch, "trace": trace, "fingerprint": fp})
    with atomic_output(path) as tmp:
        np.savez(tmp, __meta__=np.array(meta), **{f"v{i}": state[n] for i, n in enumerate(model.state_names)})


def _load_checkpoint(path: Path, model: NeuMF, fp: str):
    """(epoch, trace) from a matching checkpoint, or None (absent, stale or unreadable)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["__meta__"]))
            if meta.get("fingerprint") != fp:
                LOG.warning("checkpoint %s was made with other data or settings; starting over", path)
                return None
            arrays = {n: z[f"v{i}"] for i, n in enumerate(model.state_names)}
    except (OSError, KeyError, ValueError) as exc:
        LOG.warning("checkpoint %s is unreadable (%s); starting over", path, exc)
        return None
    model.set_state(arrays)
    return int(meta["epoch"]), list(meta["trace"])


def _train_step_fn(model: NeuMF, strategy, offset_t, global_batch: int, jit: bool):
    """A compiled distributed train step returning the (global) batch loss."""
    import tensorflow as tf

    def replica_step(c, g, y, w):
        with tf.GradientTape() as tape:
            eta = model.logits(c, g, training=True)
            per = model.entry_loss(y, eta, tf.gather(offset_t, c), g)
            loss = tf.reduce_sum(w * per) / global_batch
        grads = tape.gradient(loss, model.trainable)
        grads = [tf.convert_to_tensor(gr) for gr in grads]
        ctx = tf.distribute.get_replica_context()
        grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        model.apply_adam(grads)
        return loss

    def step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return tf.function(step, jit_compile=jit or None)


def _dataset(stream: PairStream, epoch: int, max_batches=None):
    import tensorflow as tf
    b = stream.batch_size
    sig = (tf.TensorSpec((b,), tf.int32), tf.TensorSpec((b,), tf.int32),
           tf.TensorSpec((b,), tf.float32), tf.TensorSpec((b,), tf.float32))
    ds = tf.data.Dataset.from_generator(lambda: stream.epoch(epoch, max_batches), output_signature=sig)
    opts = tf.data.Options()
    opts.deterministic = True
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(opts).prefetch(2)


def train_phase(model: NeuMF, x, offset, cfg: FitConfig, strategy, epochs: int, phase: str,
                checkpoint_dir=None, max_batches_per_epoch=None) -> tuple[list, float]:
    """Train ``model`` for ``epochs`` epochs (resuming from ``checkpoint_dir/<phase>.npz``).

    Returns the per-epoch trace (dicts with epoch, loss, seconds, samples_per_s) and the total
    number of samples processed in this call.
    """
    import tensorflow as tf
    mode = "implicit" if model.loss == "bce" else "pointwise"
    stream = PairStream(x, cfg.batch_size, cfg.seed, mode=mode, zero_keep=cfg.zero_keep,
                        num_neg=cfg.num_neg, chunk_entries=cfg.chunk_entries)
    fp = fingerprint(x, cfg, phase)
    ckpt = Path(checkpoint_dir) / f"{phase}.npz" if checkpoint_dir else None
    start, trace = 0, []
    if ckpt is not None:
        got = _load_checkpoint(ckpt, model, fp)
        if got is not None:
            start, trace = got
            start = min(start, epochs)
            LOG.info("%s: resuming from epoch %d (checkpoint %s)", phase, start, ckpt)
    with strategy.scope():
        offset_t = tf.constant(offset, tf.float32)
    step = _train_step_fn(model, strategy, offset_t, cfg.batch_size, cfg.jit)
    n_samples_total = 0.0
    t_phase = time.perf_counter()
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        ds = strategy.experimental_distribute_dataset(_dataset(stream, epoch, max_batches_per_epoch))
        total, n_batches = 0.0, 0
        for batch in ds:
            total += float(step(batch))
            n_batches += 1
        dt = time.perf_counter() - t0
        n_samples = n_batches * cfg.batch_size
        n_samples_total += n_samples
        loss = total / max(n_batches, 1)
        if not math.isfinite(loss):
            from ..core.errors import ScfactorError
            raise ScfactorError(f"{phase}: training diverged at epoch {epoch + 1} (loss {loss}); "
                                "lower the learning rate")
        trace.append({"epoch": epoch + 1, "loss": loss, "seconds": dt, "samples_per_s": n_samples / dt})
        eta = (time.perf_counter() - t_phase) / (epoch + 1 - start) * (epochs - epoch - 1)
        LOG.info("%s epoch %d/%d: loss %.5f, %.0f samples/s, %.1f s/epoch, ETA %.0f s",
                 phase, epoch + 1, epochs, loss, n_samples / dt, dt, eta)
        if ckpt is not None:
            _save_checkpoint(ckpt, model, epoch + 1, trace, fp)
    return trace, n_samples_total


def build_model(arch, x, sf, cfg: FitConfig, strategy, seed_offset=0) -> NeuMF:
    """A fresh model for ``arch`` built under ``strategy`` with gene biases from ``x``."""
    with strategy.scope():
        return NeuMF(x.shape[0], x.shape[1], arch=arch, loss=cfg.loss, emb_dim=cfg.emb_dim,
                     layers=cfg.layers, dropout=cfg.dropout, bn_layers=cfg.bn_layers,
                     gene_bias=gene_bias_init(x, cfg.loss, sf), seed=cfg.seed + seed_offset, lr=cfg.lr)


def fit(x, cfg: FitConfig, strategy, checkpoint_dir=None) -> FitResult:
    """Train the configured model on CSR counts ``x`` (pretraining first when asked)."""
    x = sp.csr_matrix(x, dtype=np.float32)
    sf = size_factors(x)
    offset = np.log(sf).astype(np.float32) if cfg.loss in COUNT_LOSSES else np.zeros(x.shape[0], np.float32)
    t0 = time.perf_counter()
    trace, samples = {}, 0.0
    model = build_model(cfg.arch, x, sf, cfg, strategy)
    if cfg.arch == "neumf" and cfg.pretrain_epochs > 0:
        # finished pretraining phases are restored from their checkpoints without training; a valid
        # NeuMF checkpoint then overrides this initialisation in train_phase
        towers = {}
        for k, arch in enumerate(("gmf", "mlp")):
            towers[arch] = build_model(arch, x, sf, cfg, strategy, seed_offset=k + 1)
            trace[f"pretrain_{arch}"], n = train_phase(towers[arch], x, offset, cfg, strategy,
                                                       cfg.pretrain_epochs, f"pretrain_{arch}", checkpoint_dir)
            samples += n
        init_from_pretrained(model, towers["gmf"], towers["mlp"])
        LOG.info("initialised NeuMF from the pretrained GMF and MLP towers")
    trace[cfg.arch], n = train_phase(model, x, offset, cfg, strategy, cfg.epochs, cfg.arch, checkpoint_dir)
    samples += n
    secs = time.perf_counter() - t0
    return FitResult(model, offset, trace, secs, samples / secs if secs > 0 else float("nan"))


def predict_dense(model: NeuMF, offset, n_cells: int, n_genes: int, block_entries: int = 1 << 18,
                  out=None) -> np.ndarray:
    """Predictions for every (cell, gene) as a float32 cells x genes array, ``block_entries`` at a time.

    Peak extra memory is a few arrays of ``block_entries`` x (widest layer) floats, independent of
    the number of cells.
    """
    import tensorflow as tf
    cells_per_block = max(1, int(block_entries) // max(1, n_genes))
    size = cells_per_block * n_genes
    off_t = tf.constant(np.asarray(offset, np.float32))

    @tf.function(input_signature=[tf.TensorSpec((size,), tf.int32), tf.TensorSpec((size,), tf.int32)])
    def block(c, g):
        return model.mean(model.logits(c, g, training=False), tf.gather(off_t, c))

    out = np.empty((n_cells, n_genes), dtype=np.float32) if out is None else out
    genes = np.tile(np.arange(n_genes, dtype=np.int32), cells_per_block)
    for start in range(0, n_cells, cells_per_block):
        stop = min(start + cells_per_block, n_cells)
        rows = np.arange(start, start + cells_per_block, dtype=np.int32)
        rows = np.minimum(rows, n_cells - 1)  # pad the last block with the last cell
        pred = block(tf.constant(np.repeat(rows, n_genes)), tf.constant(genes)).numpy()
        out[start:stop] = pred.reshape(cells_per_block, n_genes)[: stop - start]
    return out
