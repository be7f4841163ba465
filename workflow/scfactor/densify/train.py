"""Training, checkpoint/resume and block-wise dense prediction for `scfactor.densify.model`.

`fit` runs the whole recipe on a CSR count matrix: optional NCF pretraining of a GMF and an MLP
model, then the chosen architecture. Each phase has its own `scfactor.core.optim.Adam` and is
checkpointed after every epoch with `scfactor.core.checkpoint` to ``<checkpoint_dir>/<phase>.npz``
(weights, batch-norm statistics, Adam moments and step, loss trace). The fingerprint covers the
training matrix and every setting that changes the result, ``epochs`` included (`training_settings`),
so a checkpoint of another run is discarded with a warning and training starts over. A rerun with
the same fingerprint resumes after the last saved epoch ("resuming from epoch N") and, because
blocks and dropout masks are seeded by (seed, epoch, step), ends with the same weights as an
uninterrupted run. Training runs on tiles of cells x genes and prediction on blocks of whole cells x
every gene, both as dense matrix products (`NeuMF.grid_logits`); `predict_dense` fills a cells x genes
float32 array that way.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..core import checkpoint
from ..core.errors import ScfactorError
from ..core.log import LOG, Progress
from .model import COUNT_LOSSES, NeuMF, gene_bias_init, init_from_pretrained
from .pairs import BlockStream
from .spill import is_spilled

#: options that do not change the trained model (left out of the checkpoint fingerprint); the
#: accelerator is replaced by the strategy actually used
NOT_TRAINING = ("svd_rank", "predict_block", "accelerator")


@dataclass
class FitResult:
    """A trained model and its per-phase training trace."""

    model: NeuMF
    offset: np.ndarray
    trace: dict
    seconds: float
    samples_per_s: float


def size_factors(x) -> np.ndarray:
    """Library size / mean library size per cell (1 for cells with no counts); ``x`` a CSR matrix or a
    `scfactor.densify.spill.SpilledCSR`, summed a block of rows at a time."""
    from ..core.csr_stack import row_sums
    lib = row_sums(x if is_spilled(x) else sp.csr_matrix(x)).astype(np.float64)
    mean = lib[lib > 0].mean() if (lib > 0).any() else 1.0
    return np.where(lib > 0, lib / mean, 1.0)


def training_settings(opts, phase: str, strategy) -> dict:
    """What the fingerprint of phase ``phase`` covers besides the data: every option that changes the
    trained model (``epochs`` and ``pretrain_epochs`` included), the phase, and the strategy and its
    number of replicas (they change batch-norm statistics and dropout masks)."""
    d = {k: v for k, v in asdict(opts).items() if k not in NOT_TRAINING}
    d.update(phase=phase, strategy=type(strategy).__name__, replicas=int(strategy.num_replicas_in_sync))
    return d


def make_optimizer(model: NeuMF, lr: float, strategy):
    """A `scfactor.core.optim.Adam` over ``model.trainable``, its variables mirrored like the model's.

    Its learning rate is a variable (``opt.lr``), so that `train_phase` can set each epoch's rate
    without retracing the step.

    Its moments and step are created under ``strategy`` with ``ONLY_FIRST_REPLICA`` aggregation, so the
    update that every replica computes from the all-reduced gradients is applied once per variable.
    """
    import tensorflow as tf

    from ..core.optim import Adam

    def first_replica(next_creator, **kw):
        kw["aggregation"] = tf.VariableAggregation.ONLY_FIRST_REPLICA
        return next_creator(**kw)

    with strategy.scope(), tf.variable_creator_scope(first_replica):
        return Adam(model.trainable, lr=tf.Variable(float(lr), dtype=tf.float32, trainable=False))


def _restore(path: Path, fp: str, model: NeuMF, opt):
    """(epoch, trace) from the checkpoint at ``path`` when it belongs to this run (state restored), else None."""
    ck = checkpoint.load(path, fp)
    if ck is None:
        return None
    missing = (set(model.state_names) | set(opt.state())) - set(ck.arrays)
    if missing:
        LOG.warning("discarding checkpoint %s: it lacks %s; starting over", path, ", ".join(sorted(missing)[:3]))
        return None
    model.set_state(ck.arrays)
    opt.set_state(ck.arrays)
    return ck.epoch, list(ck.meta.get("trace", []))


def cells_per_block(block_entries: int, n_genes: int) -> int:
    """Cells per training tile or prediction block of ``n_genes`` genes: ``block_entries // n_genes``, at least 1."""
    return max(1, int(block_entries) // max(1, int(n_genes)))


def tile_shape(block_entries: int, block_genes: int, n_cells: int, n_genes: int) -> tuple[int, int]:
    """(cells, genes) per training tile: ``block_genes`` genes (every gene when 0 or more than there are)
    and ``block_entries // genes`` cells (at least one, at most every cell)."""
    genes = n_genes if block_genes <= 0 else min(int(block_genes), n_genes)
    return min(cells_per_block(block_entries, genes), n_cells), genes


def _train_step_fn(model: NeuMF, opt, strategy, offset_t, jit: bool):
    """A compiled distributed train step on a tile of cells x genes; returns the tile's (global) loss.

    The tile's weights are normalised by the stream (`scfactor.densify.pairs`), so the weighted sum
    over every replica's part (its share of the tile's cells, every gene of the tile) is the tile's mean loss.
    """
    import tensorflow as tf

    def replica_step(cells, genes, y, w):
        with tf.GradientTape() as tape:
            eta = model.grid_logits(cells, genes, training=True, step=opt.step)
            per = model.entry_loss(y, eta, tf.gather(offset_t, cells)[:, None], genes)
            loss = tf.reduce_sum(w * per)
        grads = tape.gradient(loss, model.trainable)
        grads = [tf.convert_to_tensor(gr) for gr in grads]
        ctx = tf.distribute.get_replica_context()
        grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        opt.apply(grads)
        return loss

    def step(block):
        per_replica = strategy.run(replica_step, args=block)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return tf.function(step, jit_compile=jit or None, reduce_retracing=True)


def _distribute(strategy, cells, genes, y, w):
    """A tile as the step's input: cells, counts and weights split by cells across the replicas
    (near-equal parts), the tile's genes given to every replica."""
    import tensorflow as tf
    n = strategy.num_replicas_in_sync
    if n == 1:
        return tuple(tf.constant(a) for a in (cells, genes, y, w))
    parts = [np.array_split(a, n) for a in (cells, y, w)]

    def replica(ctx):
        c, yy, ww = (p[ctx.replica_id_in_sync_group] for p in parts)
        return tf.constant(c), tf.constant(genes), tf.constant(yy), tf.constant(ww)
    return strategy.experimental_distribute_values_from_function(replica)


def train_phase(model: NeuMF, x, offset, opts, strategy, epochs: int, phase: str,
                checkpoint_dir=None, max_blocks_per_epoch=None, on_block=None) -> tuple[list, float]:
    """Train ``model`` for ``epochs`` epochs with a fresh Adam (resuming from ``checkpoint_dir/<phase>.npz``).

    Epoch ``k`` (from 0) trains at learning rate ``opts.lr * opts.lr_decay ** k``. An epoch is every
    tile of ``opts.block_entries // opts.block_genes`` cells x ``opts.block_genes`` genes once (`tile_shape`), in a seeded random order (`scfactor.densify.pairs.BlockStream`). ``opts``: the densify options
    (`scfactor.densify.cli.DENSIFY`). Returns the per-epoch trace (dicts with epoch, loss, seconds,
    samples_per_s) and the number of (cell, gene) entries processed in this call. ``on_block``: called
    as ``on_block(model, phase, epoch, block)`` after every training step (the benchmark scores the model there).
    """
    import tensorflow as tf
    mode = "implicit" if model.loss == "bce" else "pointwise"
    n_rep = strategy.num_replicas_in_sync
    per_block, per_tile_genes = tile_shape(opts.block_entries, opts.block_genes, *x.shape)
    if n_rep > 1:  # near-equal blocks of at least 2 cells per replica leave every replica a part of every tile
        per_block = max(per_block, 2 * n_rep)
    stream = BlockStream(x, per_block, opts.seed, mode=mode, zero_keep=opts.zero_keep, num_neg=opts.num_neg,
                         genes_per_block=per_tile_genes)
    opt = make_optimizer(model, opts.lr, strategy)
    fp = checkpoint.fingerprint(x, settings=training_settings(opts, phase, strategy))
    ckpt = Path(checkpoint_dir) / f"{phase}.npz" if checkpoint_dir else None
    start, trace = 0, []
    if ckpt is not None:
        got = _restore(ckpt, fp, model, opt)
        if got is not None:
            start, trace = got
            start = min(start, epochs)
            LOG.info("%s: resuming from epoch %d (checkpoint %s)", phase, start, ckpt)
    with strategy.scope():
        offset_t = tf.constant(offset, tf.float32)
    step = _train_step_fn(model, opt, strategy, offset_t, opts.jit)
    n_samples_total = 0.0
    progress = Progress(f"{phase} epoch", epochs, start)
    for epoch in range(start, epochs):
        opt.lr.assign(opts.lr * opts.lr_decay ** epoch)
        t0 = time.perf_counter()
        total, n_blocks, n_samples = 0.0, 0, 0
        for cells, genes, y, w in stream.epoch(epoch, max_blocks_per_epoch):
            total += float(step(_distribute(strategy, cells, genes, y, w)))
            n_blocks += 1
            n_samples += y.size
            if on_block is not None:
                on_block(model, phase, epoch, n_blocks)
        dt = time.perf_counter() - t0
        n_samples_total += n_samples
        loss = total / max(n_blocks, 1)
        if not math.isfinite(loss):
            raise ScfactorError(f"{phase}: training diverged at epoch {epoch + 1} (loss {loss}); "
                                "lower the learning rate")
        trace.append({"epoch": epoch + 1, "loss": loss, "seconds": dt, "samples_per_s": n_samples / dt})
        progress.log(epoch + 1, loss=loss, **{"samples/s": int(round(n_samples / dt))})
        if ckpt is not None:
            checkpoint.save(ckpt, {**model.get_state(), **opt.state()}, fingerprint=fp, epoch=epoch + 1,
                            meta={"trace": trace})
    return trace, n_samples_total


def build_model(arch, x, sf, opts, strategy, seed_offset=0) -> NeuMF:
    """A fresh ``arch`` model built under ``strategy`` from the options, with gene biases from ``x``."""
    with strategy.scope():
        return NeuMF(x.shape[0], x.shape[1], arch=arch, loss=opts.loss, embedding_dim=opts.embedding_dim,
                     layers=opts.layers, dropout=opts.dropout, bn_layers=opts.bn_layers,
                     gene_bias=gene_bias_init(x, opts.loss, sf), seed=opts.seed + seed_offset)


def fit(x, opts, strategy, checkpoint_dir=None, on_block=None) -> FitResult:
    """Train the configured model on CSR counts ``x`` (or a `scfactor.densify.spill.SpilledCSR`) (pretraining
    first when asked).

    ``opts``: the densify options object (`scfactor.densify.cli.DENSIFY`; ``DENSIFY.defaults(...)``).
    ``on_block``: see `train_phase`.
    """
    if not is_spilled(x):
        x = sp.csr_matrix(x, dtype=np.float32)
    sf = size_factors(x)
    offset = np.log(sf).astype(np.float32) if opts.loss in COUNT_LOSSES else np.zeros(x.shape[0], np.float32)
    t0 = time.perf_counter()
    trace, samples = {}, 0.0
    model = build_model(opts.arch, x, sf, opts, strategy)
    if opts.arch == "neumf" and opts.pretrain_epochs > 0:
        # finished pretraining phases are restored from their checkpoints without training; a valid
        # NeuMF checkpoint then overrides this initialisation in train_phase
        towers = {}
        for k, arch in enumerate(("gmf", "mlp")):
            towers[arch] = build_model(arch, x, sf, opts, strategy, seed_offset=k + 1)
            trace[f"pretrain_{arch}"], n = train_phase(towers[arch], x, offset, opts, strategy,
                                                       opts.pretrain_epochs, f"pretrain_{arch}", checkpoint_dir,
                                                       on_block=on_block)
            samples += n
        init_from_pretrained(model, towers["gmf"], towers["mlp"])
        LOG.info("initialised NeuMF from the pretrained GMF and MLP towers")
    trace[opts.arch], n = train_phase(model, x, offset, opts, strategy, opts.epochs, opts.arch, checkpoint_dir,
                                      on_block=on_block)
    samples += n
    secs = time.perf_counter() - t0
    return FitResult(model, offset, trace, secs, samples / secs if secs > 0 else float("nan"))


def predict_blocks(model: NeuMF, offset, n_cells: int, n_genes: int, block_entries: int):
    """Yield ``(start, stop, float32 (stop - start) x genes predictions)`` for consecutive blocks of whole cells.

    A block is ``block_entries // n_genes`` cells (at least one) x all genes (`NeuMF.grid_logits`);
    peak extra memory is a few arrays of ``block_entries`` x (widest layer) floats, independent of
    the number of cells.
    """
    import tensorflow as tf
    per_block = cells_per_block(block_entries, n_genes)
    off_t = tf.constant(np.asarray(offset, np.float32))

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.int32)], autograph=False)
    def block(cells):
        return model.mean(model.grid_logits(cells, training=False), tf.gather(off_t, cells)[:, None])

    for start in range(0, n_cells, per_block):
        stop = min(start + per_block, n_cells)
        yield start, stop, block(tf.constant(np.arange(start, stop, dtype=np.int32))).numpy()


def predict_dense(model: NeuMF, offset, n_cells: int, n_genes: int, block_entries: int, out=None) -> np.ndarray:
    """Predictions for every (cell, gene) as a float32 cells x genes array (or into ``out``, e.g. an h5py
    dataset), a block of whole cells at a time (`predict_blocks`)."""
    out = np.empty((n_cells, n_genes), dtype=np.float32) if out is None else out
    for start, stop, values in predict_blocks(model, offset, n_cells, n_genes, block_entries):
        out[start:stop] = values
    return out
