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

This is the ``tensorflow`` engine (GPU / TPU through ``accelerator``); `scfactor.mtl.model_np` computes
the same model in numpy without importing TensorFlow (the ``numpy`` engine). The epoch loop, seeds and
checkpoints they share are `scfactor.mtl.training`.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..core.optim import Adam
from . import training
from .data import ShardData
from .training import CHECKPOINT, HIDDEN, UNFOLD_AXES, shard_fingerprint  # noqa: F401  (this module's API)


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

    def __init__(self, n_genes: int, n_tfs: int, seed: int, hidden=HIDDEN, dtype="float32", init=None):
        import tensorflow as tf
        self.G, self.T, self.hidden = n_genes, n_tfs, tuple(hidden)
        if init is None:
            init = training.initial_weights(n_genes, n_tfs, seed, hidden, dtype)
        self.names = list(init)
        self.vars = {k: tf.Variable(v, name=k) for k, v in init.items()}

    @property
    def variables(self):
        """The variables in a fixed order (``names``)."""
        return [self.vars[k] for k in self.names]

    def arrays(self) -> dict:
        """The weights as numpy arrays, by name."""
        return {k: self.vars[k].numpy() for k in self.names}

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


class TFEngine:
    """The TensorFlow engine of `training.fit`: a `BatchedMTL`, Adam and one compiled training step."""

    def __init__(self, shard: ShardData, opts, init: dict):
        import tensorflow as tf
        self.model = BatchedMTL(shard.n_genes, shard.n_tfs, seed=0, init=init)
        self.opt = Adam(self.model.variables, lr=opts.learning_rate)
        model, opt, axis = self.model, self.opt, UNFOLD_AXES[opts.unfold_axis]
        self.E = E = tf.constant(shard.expr)
        Yt = tf.constant(np.nan_to_num(shard.y))
        self.A, self.C = A, C = tf.constant(shard.A), tf.constant(shard.C)
        lam_t, l1_t = tf.constant(opts.lam, tf.float32), tf.constant(opts.l1, tf.float32)

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
        self._step = step

    def step(self, idx):
        """One Adam step on a genes x batch index array; (loss, mse, trace norm)."""
        import tensorflow as tf
        loss, mse, tn = self._step(tf.constant(idx))
        return float(loss), float(mse), float(tn)

    def state(self) -> dict:
        """The full training state as named arrays (model variables + Adam state) for `core.checkpoint`."""
        return training.engine_state(self.model, self.opt)

    def restore(self, arrays) -> None:
        """Restore what `state` returned."""
        for k in self.model.names:
            self.model.vars[k].assign(arrays[f"var/{k}"])
        self.opt.set_state(arrays)


def train_shard(shard: ShardData, opts, *, seed_seq: np.random.SeedSequence, checkpoint_dir=None,
                strategy=None, log_every: int = 1):
    """Train the batched TensorFlow model on a shard (`training.fit`); returns (model, history)."""
    ctx = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with ctx:
        engine, history = training.fit(shard, opts, lambda init: TFEngine(shard, opts, init), seed_seq=seed_seq,
                                       engine_name="tensorflow", checkpoint_dir=checkpoint_dir,
                                       log_every=log_every)
    return engine.model, history


def predictor(model, shard: ShardData):
    """``idx -> genes x n`` predictions of a `BatchedMTL` on the cells ``idx`` (genes x n)."""
    import tensorflow as tf
    E, A, C = tf.constant(shard.expr), tf.constant(shard.A), tf.constant(shard.C)
    return lambda idx: model(tf.gather(E, idx), A, C).numpy()


def predict_test(model, shard: ShardData, chunk: int = 2048):
    """Per gene: (y_true, y_pred) on its test cells, predicted in cell chunks (bounded memory)."""
    return training.predict_test(predictor(model, shard), shard, chunk)


def test_r2(model, shard: ShardData) -> np.ndarray:
    """Test R2 per gene (velocities standardised with training stats; R2 is unaffected)."""
    return training.test_r2(predictor(model, shard), shard)
