"""Trace-norm multi-task learning (the trace-norm MTL notebook, MTLRank) as ONE batched TensorFlow model per shard.

The notebook trains one Keras model per gene of a cluster: per TF a Dense(1, ReLU) on the TF's five
features, concatenated, Dense 64-32-16 (ReLU), Dense(1). Here every weight carries a leading gene
axis and the genes run together with batched matmuls::

    h0[g,b,t] = relu(sum_f X[g,b,t,f] w0[g,t,f] + c0[g,t])       (X built per batch, see `data`)
    h1 = relu(h0 @ W1[g] + b1[g]);  h2 = relu(h1 @ W2[g] + b2[g]);  h3 = relu(h2 @ W3[g] + b3[g])
    yhat[g,b] = h3 @ w4[g] + b4[g]

Loss = mean over genes of the MSE + ``lam`` x mean(trace norm of W1 stacked over genes, trace norm
of W2 stacked over genes) + ``l1`` x mean over genes of the L1 norm of the ReLU layers' kernels.
The tensor trace norm unfolds the stacked kernel along ``unfold_axis`` (0 = the gene/task axis,
as the notebook's ``TensorUnfold(X, -1)`` on its genes-last stack) and takes the nuclear norm,
whose gradient is ``U V^T`` from the thin SVD (`nuclear_norm`, a custom gradient).
Adam (`scfactor.core.optim.Adam`: Keras' update rule, state restored exactly from a checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np

from ..core import checkpoint
from ..core.log import LOG, Progress
from ..core.optim import Adam
from .data import ShardData, epoch_batches, r2_score

HIDDEN = (64, 32, 16)
UNFOLD_AXES = {"task": 0, "input": 1, "output": 2}
#: the checkpoint file inside a shard's checkpoint folder
CHECKPOINT = "state.npz"


def nuclear_norm(x):
    """Sum of singular values of a matrix; gradient ``U V^T`` (thin SVD)."""
    import tensorflow as tf

    @tf.custom_gradient
    def _nn(m):
        s, u, v = tf.linalg.svd(m, full_matrices=False, compute_uv=True)

        def grad(dy):
            return dy * tf.matmul(u, v, transpose_b=True)
        return tf.reduce_sum(s), grad
    return _nn(x)


def unfold(w, axis: int):
    """Mode-``axis`` unfolding of a 3-way tensor: that axis becomes the rows."""
    import tensorflow as tf
    perm = [axis] + [a for a in range(3) if a != axis]
    w = tf.transpose(w, perm)
    return tf.reshape(w, [tf.shape(w)[0], -1])


def trace_norm(w, axis: int = 0):
    """Tensor trace norm of a (genes x in x out) kernel stack, unfolded along ``axis``."""
    return nuclear_norm(unfold(w, axis))


class BatchedMTL:
    """The per-gene networks of one shard as one set of gene-batched variables."""

    def __init__(self, n_genes: int, n_tfs: int, seed: int, hidden=HIDDEN, dtype="float32"):
        import tensorflow as tf
        self.G, self.T, self.hidden = n_genes, n_tfs, tuple(hidden)
        rng = np.random.default_rng(seed)

        def glorot(shape, fan_in, fan_out):
            lim = np.sqrt(6.0 / (fan_in + fan_out))
            return rng.uniform(-lim, lim, size=shape).astype(dtype)

        dims = (n_tfs,) + self.hidden
        init = {"w0": glorot((n_genes, n_tfs, 5), 5, 1), "c0": np.zeros((n_genes, n_tfs), dtype)}
        for i in range(len(self.hidden)):
            init[f"W{i + 1}"] = glorot((n_genes, dims[i], dims[i + 1]), dims[i], dims[i + 1])
            init[f"b{i + 1}"] = np.zeros((n_genes, dims[i + 1]), dtype)
        init["w_out"] = glorot((n_genes, dims[-1], 1), dims[-1], 1)
        init["b_out"] = np.zeros((n_genes, 1), dtype)
        self.names = list(init)
        self.vars = {k: tf.Variable(v, name=k) for k, v in init.items()}

    @property
    def variables(self):
        """The variables in a fixed order (``names``)."""
        return [self.vars[k] for k in self.names]

    def l1_kernels(self):
        """Kernels that carry the L1 penalty (per-TF, 64, 32, 16 layers)."""
        return [self.vars["w0"]] + [self.vars[f"W{i + 1}"] for i in range(len(self.hidden))]

    def __call__(self, e, A, C):
        """Predictions (genes x batch) from gathered expression ``e`` (genes x batch x TFs)."""
        import tensorflow as tf
        v = self.vars
        w_eff = tf.reduce_sum(A * v["w0"], axis=-1)                # genes x TFs
        c_eff = tf.reduce_sum(C * v["w0"], axis=-1) + v["c0"]
        h = tf.nn.relu(e * w_eff[:, None, :] + c_eff[:, None, :])
        for i in range(len(self.hidden)):
            h = tf.nn.relu(tf.matmul(h, v[f"W{i + 1}"]) + v[f"b{i + 1}"][:, None, :])
        return tf.squeeze(tf.matmul(h, v["w_out"]), -1) + v["b_out"]


def _arrays(model, opt) -> dict:
    """The full training state as named arrays (model variables + Adam state) for `core.checkpoint`."""
    out = {f"var/{k}": model.vars[k].numpy() for k in model.names}
    out.update(opt.state())
    return out


def _restore(model, opt, arrays) -> None:
    for k in model.names:
        model.vars[k].assign(arrays[f"var/{k}"])
    opt.set_state(arrays)


def shard_fingerprint(shard: ShardData, settings: dict) -> str:
    """Digest of the shard's data (genes, expression, targets, splits, features) and ``settings``."""
    return checkpoint.fingerprint(shard.genes, shard.expr, shard.A, shard.C, np.nan_to_num(shard.y),
                                  *shard.train, *shard.test, settings=settings)


def train_shard(shard: ShardData, opts, *, seed_seq: np.random.SeedSequence, checkpoint_dir=None,
                strategy=None, log_every: int = 1):
    """Train the batched model on a shard; returns (model, history list of per-epoch dicts).

    ``opts``: the training settings (``epochs``, ``batch_size``, ``learning_rate``, ``lam``, ``l1``,
    ``unfold_axis``; `scfactor.mtl.cli.TRAIN_SHARD` options). Per epoch: the notebook's resampling
    (`epoch_batches`, rng from ``seed_seq`` and the epoch number, so that a resumed run draws the same
    batches), Adam steps, then a checkpoint (`scfactor.core.checkpoint`) in ``checkpoint_dir``, resumed
    from when it belongs to this shard and these settings (logs "resuming from epoch N").
    """
    import tensorflow as tf
    epochs, batch_size, lr = opts.epochs, opts.batch_size, opts.learning_rate
    lam, l1, unfold_axis = opts.lam, opts.l1, opts.unfold_axis
    axis = UNFOLD_AXES[unfold_axis]
    # the children seed_seq.spawn(2) gives on a fresh sequence, without spawn's side effect on seed_seq
    # (a second call with the same object would otherwise train from other seeds)
    init_seed, data_seed = (np.random.SeedSequence(seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, i),
                                                   pool_size=seed_seq.pool_size) for i in range(2))
    settings = dict(epochs=epochs, batch_size=batch_size, lr=lr, lam=lam, l1=l1, unfold=unfold_axis,
                    hidden=list(HIDDEN), seed=str(seed_seq.entropy), spawn=str(seed_seq.spawn_key))
    fp = shard_fingerprint(shard, settings)
    ctx = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with ctx:
        model = BatchedMTL(shard.n_genes, shard.n_tfs, seed=init_seed.generate_state(1)[0])
        opt = Adam(model.variables, lr=lr)
    E = tf.constant(shard.expr)
    Yt = tf.constant(np.nan_to_num(shard.y))
    A, C = tf.constant(shard.A), tf.constant(shard.C)
    lam_t, l1_t = tf.constant(lam, tf.float32), tf.constant(l1, tf.float32)

    @tf.function(reduce_retracing=True)
    def step(idx):
        e = tf.gather(E, idx)                          # genes x batch x TFs
        y = tf.gather(Yt, idx, batch_dims=1)           # genes x batch
        with tf.GradientTape() as tape:
            pred = model(e, A, C)
            mse = tf.reduce_mean(tf.square(y - pred))  # = mean over genes of each gene's MSE
            tn = 0.5 * (trace_norm(model.vars["W1"], axis) + trace_norm(model.vars["W2"], axis))
            pen = tf.add_n([tf.reduce_sum(tf.abs(k)) for k in model.l1_kernels()]) / model.G
            loss = mse + lam_t * tn + l1_t * pen
        grads = tape.gradient(loss, model.variables)
        opt.apply(grads)
        return loss, mse, tn

    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    start = 0
    if ckpt is not None:
        state = checkpoint.load(ckpt, fp)
        if state is not None:
            _restore(model, opt, state.arrays)
            start = state.epoch
            LOG.info("resuming from epoch %d (checkpoint %s)", start, ckpt)
    history = []
    progress = Progress("epoch", epochs, start=start)
    for ep in range(start, epochs):
        rng = np.random.default_rng(np.random.SeedSequence(data_seed.entropy, spawn_key=(*data_seed.spawn_key, ep)))
        batches = epoch_batches(shard.train, batch_size, rng)
        t0 = time.time()
        losses = []
        for idx in batches:
            loss, mse, tn = step(tf.constant(idx))
            losses.append((float(loss), float(mse), float(tn)))
        dt = time.time() - t0
        lo = np.mean(losses, axis=0)
        history.append(dict(epoch=ep + 1, loss=lo[0], mse=lo[1], trace_norm=lo[2], seconds=dt))
        if (ep + 1) % log_every == 0 or ep + 1 == epochs:
            progress.log(ep + 1, loss=float(lo[0]), mse=float(lo[1]), trace_norm=float(lo[2]),
                         batches=len(batches))
        if ckpt is not None:
            checkpoint.save(ckpt, _arrays(model, opt), fingerprint=fp, epoch=ep + 1)
    return model, history


def predict_test(model, shard: ShardData, chunk: int = 2048):
    """Per gene: (y_true, y_pred) on its test cells, predicted in cell chunks (bounded memory)."""
    import tensorflow as tf
    n = max(len(t) for t in shard.test)
    idx = np.zeros((shard.n_genes, n), dtype=np.int32)
    for k, t in enumerate(shard.test):
        idx[k, :len(t)] = t
    E = tf.constant(shard.expr)
    A, C = tf.constant(shard.A), tf.constant(shard.C)
    preds = np.concatenate([model(tf.gather(E, idx[:, s:s + chunk]), A, C).numpy()
                            for s in range(0, n, chunk)], axis=1)
    return [(shard.y[k, t], preds[k, :len(t)]) for k, t in enumerate(shard.test)]


def test_r2(model, shard: ShardData) -> np.ndarray:
    """Test R2 per gene (velocities standardised with training stats; R2 is unaffected)."""
    return np.array([r2_score(y, p) for y, p in predict_test(model, shard)])


def save_weights(path, model, genes, attrs: dict) -> None:
    """Final weights as ``.npz`` (one array per variable, leading gene axis, plus ``genes`` and ``attrs``).

    Written with fixed zip timestamps so that the same weights always give the same bytes.
    """
    import io as _io
    import zipfile
    from ..core.io import atomic_output
    arrays = {"genes": np.array([str(g) for g in genes]),
              "attrs": np.array(json.dumps(attrs, sort_keys=True))}
    arrays.update({k: model.vars[k].numpy() for k in model.names})
    with atomic_output(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for k, a in arrays.items():
                buf = _io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
                info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, buf.getvalue())
