"""A faithful re-creation of the trace-norm MTL notebook's per-gene Keras MTLRank training (for the benchmark and tests only).

One Keras model per gene with one Input per TF (`build_model`, as in the notebook), features
materialised per gene as lists of (cells x 5) arrays, an eager training step that runs every
model, stacks the Dense(64) / Dense(32) kernels genes-last and adds 0.01 x the mean tensor trace
norm (`TensorUnfold(X, -1)`), test R2 with `model.predict`. Differences from the notebook, all
needed to run it at all: one Adam optimizer over all models' variables is applied once per step
(Keras 3 optimizers refuse variables they were not built with), features are standardised with
training statistics (as the batched model), and the code reads a `ShardData` instead of globals.
"""

from __future__ import annotations

import time

import numpy as np


def build_model(num_tf, num_feature_type):
    """The notebook's per-gene network (one Input and one Dense(1) per TF)."""
    import tensorflow as tf
    from tensorflow.keras import Model
    from tensorflow.keras.layers import Dense, Input, concatenate
    inputs = [Input(shape=(num_feature_type,)) for _ in range(num_tf)]
    tf_layers = [Dense(1, activation="relu", kernel_regularizer=tf.keras.regularizers.l1(0.01)) for _ in inputs]
    concat_layer = concatenate([lay(inp) for lay, inp in zip(tf_layers, inputs)])
    d64 = Dense(64, activation="relu", kernel_regularizer=tf.keras.regularizers.l1(0.01))
    d32 = Dense(32, activation="relu", kernel_regularizer=tf.keras.regularizers.l1(0.01))
    d16 = Dense(16, activation="relu", kernel_regularizer=tf.keras.regularizers.l1(0.01))
    d1 = Dense(1, activation="linear")
    out = d1(d16(d32(d64(concat_layer))))
    model = Model(inputs=inputs, outputs=out)
    model.tf_layers, model.hidden_layers = tf_layers, [d64, d32, d16, d1]
    return model


def load_batched_weights(km, batched, g):
    """Copy gene ``g``'s weights of a `BatchedMTL` into a per-gene Keras model."""
    v = {k: x.numpy() for k, x in batched.vars.items()}
    for t, lay in enumerate(km.tf_layers):
        lay.set_weights([v["w0"][g, t][:, None], v["c0"][g, t][None]])
    for i, lay in enumerate(km.hidden_layers[:3]):
        lay.set_weights([v[f"W{i + 1}"][g], v[f"b{i + 1}"][g]])
    km.hidden_layers[3].set_weights([v["w_out"][g], v["b_out"][g]])


def seed_features(shard):
    """The notebook's per-gene feature lists: X[gene] = [cells x 5 per TF] (train and test)."""
    from scfactor.mtl.data import explicit_features
    xtr, xte = [], []
    for g in range(shard.n_genes):
        ftr = explicit_features(shard.expr[shard.train[g]], shard.A[g], shard.C[g]).astype(np.float64)
        fte = explicit_features(shard.expr[shard.test[g]], shard.A[g], shard.C[g]).astype(np.float64)
        xtr.append([ftr[:, t, :] for t in range(shard.n_tfs)])
        xte.append([fte[:, t, :] for t in range(shard.n_tfs)])
    return xtr, xte


def train_seed(shard, epochs, batch_size=256, lam=0.01, lr=0.01, seed=0, max_steps=None, log=None, compiled=False):
    """Train the per-gene models the notebook's way; returns (models, wall seconds per epoch, CPU seconds per epoch).

    ``compiled``: the same step wrapped in ``tf.function`` (traced once per batch shape: the first epoch
    pays the tracing, and a shorter last batch one more) instead of the notebook's eager step.
    """
    import functools

    import tensorflow as tf
    log = log or functools.partial(print, flush=True)
    tf.keras.utils.set_random_seed(seed)
    num_tf = shard.n_tfs
    xtr, _ = seed_features(shard)
    ytr = [shard.y[g, shard.train[g]].astype(np.float64) for g in range(shard.n_genes)]
    models = [build_model(num_tf=num_tf, num_feature_type=5) for _ in range(shard.n_genes)]
    mse = tf.keras.losses.MeanSquaredError()
    optimizer = tf.keras.optimizers.Adam(learning_rate=lr)
    all_vars = [v for m in models for v in m.trainable_weights]
    optimizer.build(all_vars)

    def nuclear_norm(x):
        @tf.custom_gradient
        def _nn(m):
            sigma = tf.linalg.svd(m, full_matrices=False, compute_uv=False)

            def grad(dy):
                _, u, v = tf.linalg.svd(m, full_matrices=False, compute_uv=True)
                return dy * tf.matmul(u, tf.transpose(v))
            return tf.reduce_sum(sigma), grad
        return _nn(x)

    def tensor_unfold(a, k):
        tmp = np.arange(a.shape.ndims)
        a = tf.transpose(a, [tmp[k]] + np.delete(tmp, k).tolist())
        return tf.reshape(a, [a.shape[0], np.prod(a.shape[1:])])

    def train_step(x_batches, y_batches):
        with tf.GradientTape() as tape:
            y_pred = [models[k](x, training=True) for k, x in enumerate(x_batches)]
            MSE = [tf.reduce_mean(mse(y, y_pred[k])) for k, y in enumerate(y_batches)]
            sharable = [tf.stack([m.trainable_weights[layer] for m in models], axis=-1)
                        for layer in (num_tf * 2, num_tf * 2 + 2)]
            tracenorm = [nuclear_norm(tensor_unfold(w, -1)) for w in sharable]
            loss = tf.reduce_mean(MSE) + tf.math.multiply(lam, tf.reduce_mean(tracenorm))
        grads = tape.gradient(loss, all_vars, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        optimizer.apply_gradients(zip(grads, all_vars))
        return loss, tf.reduce_mean(MSE)

    step = tf.function(train_step, reduce_retracing=True) if compiled else train_step
    rng = np.random.default_rng(seed)
    per_epoch, cpu_epoch = [], []
    for ep in range(epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        max_size = max(len(y) for y in ytr)
        idx_iter = []
        for y in ytr:
            idx = np.arange(len(y))
            rng.shuffle(idx)
            idx = np.resize(idx, max_size)
            idx_iter.append(np.split(idx, np.arange(batch_size, idx.shape[0], batch_size)))
        n_iter = len(idx_iter[0]) if max_steps is None else min(max_steps, len(idx_iter[0]))
        for j in range(n_iter):
            xb = [[tf.convert_to_tensor(f[idx_iter[k][j]], dtype=tf.float64) for f in xtr[k]]
                  for k in range(shard.n_genes)]
            yb = [tf.convert_to_tensor(ytr[k][idx_iter[k][j]], dtype=tf.float64) for k in range(shard.n_genes)]
            loss, m = step(xb, yb)
        scale = len(idx_iter[0]) / n_iter                  # max_steps: extrapolated to the whole epoch
        dt = (time.perf_counter() - t0) * scale
        per_epoch.append(dt)
        cpu_epoch.append((time.process_time() - c0) * scale)
        log(f"seed{' (tf.function)' if compiled else ''} epoch {ep + 1}/{epochs}: loss {float(loss):.4f} "
            f"mse {float(m):.4f}, {dt:.1f} s/epoch ({cpu_epoch[-1]:.1f} CPU s)")
    return models, per_epoch, cpu_epoch


def test_seed(models, shard):
    """Test R2 per gene with model.predict, as the notebook's test_step."""
    from scfactor.mtl.data import r2_score
    _, xte = seed_features(shard)
    out = []
    for g, m in enumerate(models):
        pred = m.predict(xte[g], verbose=0)[:, 0]
        out.append(r2_score(shard.y[g, shard.test[g]], pred))
    return np.array(out)
