"""NeuMF (He et al. 2017) for cell x gene count matrices, in TensorFlow 2.

Architectures (as in the NeuMF/LIGER notebook): ``gmf`` (cell and gene embeddings multiplied
elementwise, then a linear output), ``mlp`` (embeddings concatenated, then a ReLU tower 64-32-16-8
with batch norm and dropout after the first two layers, as in the notebook, but no dropout on the
embeddings), and ``neumf`` (both towers with their own embeddings, fused by one output layer).
Every architecture also has a per-gene bias in the output (initialised from the gene's mean) so
that training starts from the "gene mean x library size" model.

Losses, and what the dense prediction means:

* ``poisson``: ``y ~ Poisson(mu)``, ``log mu = log s_cell + eta`` (``s`` = library size / mean);
  predicts the expected count ``mu``.
* ``nb``: ``y ~ NB(mu, theta_gene)`` with a learnt per-gene inverse dispersion; predicts ``mu``.
* ``mse``: squared error on raw counts, no offset (the notebook's loss); predicts ``max(eta, 0)``.
* ``bce``: implicit feedback as in NCF: nonzero = 1, ``num_neg`` sampled zeros per nonzero = 0;
  predicts the probability that the gene is detected in the cell (not a count).

The computation is dense (`NeuMF.grid_logits`): a tile of cells x genes (every gene when predicting)
as matrix products, the MLP's first layer split into a per-cell and a per-gene part.

The model is a plain object holding variables created under the caller's distribution strategy
(aggregation ``ONLY_FIRST_REPLICA``: every replica applies the same all-reduced update). It has no
optimiser of its own: training (`scfactor.densify.train`) uses `scfactor.core.optim.Adam`, whose step
counter also keys the stateless dropout masks (seed, step), so that a resumed run replays exactly
the batches and masks it would have seen.
"""

from __future__ import annotations

import numpy as np

ARCHS = ("gmf", "mlp", "neumf")
LOSSES = ("poisson", "nb", "mse", "bce")
COUNT_LOSSES = ("poisson", "nb")


def _tf():
    import tensorflow as tf
    return tf


def _var(value, name, trainable=True):
    tf = _tf()
    return tf.Variable(np.asarray(value, dtype=np.float32), name=name, trainable=trainable,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def _lecun_uniform(rng, fan_in, fan_out):
    lim = np.sqrt(3.0 / fan_in)
    return rng.uniform(-lim, lim, size=(fan_in, fan_out))


def _he_uniform(rng, fan_in, fan_out):
    lim = np.sqrt(6.0 / fan_in)
    return rng.uniform(-lim, lim, size=(fan_in, fan_out))


class NeuMF:
    """GMF / MLP / NeuMF towers with a per-gene output bias (and NB dispersions for ``nb``).

    Build it inside ``strategy.scope()``. ``trainable`` lists the variables the optimiser updates;
    ``state_names`` / ``state`` list every variable (weights and batch-norm statistics) in a fixed
    order, which is what checkpoints store (with the optimiser's own state).
    """

    def __init__(self, n_cells: int, n_genes: int, *, arch: str, loss: str, embedding_dim: int, layers,
                 dropout: float, bn_layers: int, seed: int, gene_bias=None):
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
        tf = _tf()
        self.arch, self.loss = arch, loss
        self.emb_dim, self.layers = int(embedding_dim), tuple(int(u) for u in layers)
        self.dropout, self.bn_layers, self.seed = float(dropout), int(bn_layers), int(seed)
        rng = np.random.default_rng([int(seed), 7])
        self.names: list[str] = []
        self.vars: dict = {}

        def add(name, value, trainable=True):
            self.vars[name] = _var(value, name, trainable)
            self.names.append(name)

        d = self.emb_dim
        width = 0
        if arch in ("gmf", "neumf"):
            add("gmf_cell", rng.normal(0, 0.1, (n_cells, d)))
            add("gmf_gene", rng.normal(0, 0.1, (n_genes, d)))
            width += d
        if arch in ("mlp", "neumf"):
            add("mlp_cell", rng.normal(0, 0.1, (n_cells, d)))
            add("mlp_gene", rng.normal(0, 0.1, (n_genes, d)))
            fan_in = 2 * d
            for i, units in enumerate(self.layers):
                add(f"mlp_w{i}", _he_uniform(rng, fan_in, units))
                add(f"mlp_b{i}", np.zeros(units))
                if i < self.bn_layers:
                    add(f"bn_gamma{i}", np.ones(units))
                    add(f"bn_beta{i}", np.zeros(units))
                    add(f"bn_mean{i}", np.zeros(units), trainable=False)
                    add(f"bn_var{i}", np.ones(units), trainable=False)
                fan_in = units
            width += fan_in
        add("out_w", _lecun_uniform(rng, width, 1) * 0.1)
        add("out_b", np.zeros(1))
        gb = np.zeros(n_genes) if gene_bias is None else np.asarray(gene_bias, dtype=np.float64)
        add("gene_bias", gb)
        if loss == "nb":
            add("log_theta", np.zeros(n_genes))
        self.trainable = [self.vars[n] for n in self.names if self.vars[n].trainable]
        self.trainable_names = [n for n in self.names if self.vars[n].trainable]
        self.state_names = list(self.names)
        self.state = [self.vars[n] for n in self.names]
        self._tf = tf

    # ------------------------------------------------------------------ forward pass
    def grid_logits(self, cells, genes=None, training: bool = False, step=None):
        """The linear predictor ``eta`` of a tile of cells x genes, shape (len(cells), len(genes)).

        ``genes``: the tile's genes (int32 indices), or None for every gene. Dense matrix products,
        no (cell, gene) pairs: the GMF tower's output is ``(cell_emb * w_gmf) @ gene_emb.T``; the MLP
        tower's first layer on ``concat(cell, gene)`` splits into a cell part and a gene part
        (``cell_emb @ W0[:d]`` + ``gene_emb @ W0[d:]``), so it is a broadcast sum over the tile, and
        the later layers are matrix products over the (cells x genes) rows. ``training``: batch
        statistics (over the whole tile) and dropout; ``step`` (the optimiser's step counter) then
        keys the dropout masks.
        """
        tf = self._tf
        v = self.vars

        def gene_rows(name):
            return v[name] if genes is None else tf.gather(v[name], genes)

        d = self.emb_dim
        out_w = v["out_w"]
        gene_bias = gene_rows("gene_bias")
        eta = v["out_b"][0] + gene_bias[None, :]
        if self.arch in ("gmf", "neumf"):
            cell = tf.gather(v["gmf_cell"], cells) * tf.transpose(out_w[:d])
            eta = eta + tf.matmul(cell, gene_rows("gmf_gene"), transpose_b=True)
        if self.arch in ("mlp", "neumf"):
            w0 = v["mlp_w0"]
            a = tf.matmul(tf.gather(v["mlp_cell"], cells), w0[:d])
            b = tf.matmul(gene_rows("mlp_gene"), w0[d:]) + v["mlp_b0"]
            h = tf.reshape(a[:, None, :] + b[None, :, :], [-1, self.layers[0]])
            h = self._tower(h, training, step)
            w_out = out_w[d:] if self.arch == "neumf" else out_w
            eta = eta + tf.reshape(tf.matmul(h, w_out), [-1, tf.shape(b)[0]])
        return eta

    def logits(self, c, g):
        """``eta`` at (cell, gene) index pairs ``c``, ``g`` (inference: running batch-norm statistics).

        The per-pair form of `grid_logits` (gathered embeddings, ``concat`` then layer 1), kept as
        the reference the grid computation is tested against.
        """
        tf = self._tf
        v = self.vars
        parts = []
        if self.arch in ("gmf", "neumf"):
            parts.append(tf.gather(v["gmf_cell"], c) * tf.gather(v["gmf_gene"], g))
        if self.arch in ("mlp", "neumf"):
            h = tf.concat([tf.gather(v["mlp_cell"], c), tf.gather(v["mlp_gene"], g)], axis=1)
            parts.append(self._tower(tf.matmul(h, v["mlp_w0"]) + v["mlp_b0"], False, None))
        z = parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)
        return tf.squeeze(tf.matmul(z, v["out_w"]), 1) + v["out_b"][0] + tf.gather(v["gene_bias"], g)

    def _tower(self, h, training, step):
        """The MLP tower from layer 1's pre-activation (bias included) to its last layer's output."""
        tf = self._tf
        v = self.vars
        for i in range(len(self.layers)):
            if i > 0:
                h = tf.matmul(h, v[f"mlp_w{i}"]) + v[f"mlp_b{i}"]
            h = tf.nn.relu(h)
            if i < self.bn_layers:
                h = self._batch_norm(h, i, training)
                h = self._dropout(h, training, i + 1, step)
        return h

    def _dropout(self, h, training, layer, step):
        """Inverted dropout with masks keyed by (seed, step, layer, replica).

        The mask draws 16 random bits per entry (two per 32-bit Philox output, half the draws of a
        float uniform per entry): an entry is kept when its bits are at least ``round(rate * 65536)``,
        and kept entries are scaled by the exact inverse of that keep probability.
        """
        if not training or self.dropout <= 0:
            return h
        if step is None:
            raise ValueError("training with dropout needs the optimiser's step (grid_logits(..., step=opt.step))")
        tf = self._tf
        ctx = tf.distribute.get_replica_context()
        rid = tf.cast(ctx.replica_id_in_sync_group, tf.int64) if ctx is not None else tf.constant(0, tf.int64)
        seed = tf.stack([tf.cast(step, tf.int64) * 64 + layer * 8 + rid, tf.constant(self.seed, tf.int64)])
        units = h.shape[-1]
        bits = tf.random.stateless_uniform([tf.shape(h)[0], (units + 1) // 2], seed, minval=None, maxval=None,
                                           dtype=tf.uint32)
        bits = tf.reshape(tf.bitcast(bits, tf.uint16), [tf.shape(h)[0], -1])[:, :units]
        drop = min(int(round(self.dropout * 65536)), 65535)
        mask = tf.where(bits >= tf.constant(drop, tf.uint16), tf.constant(65536.0 / (65536 - drop)), 0.0)
        return h * mask

    def _batch_norm(self, h, i, training, momentum=0.99, eps=1e-3):
        """Batch norm over the rows of ``h``; in training one fused kernel each way (statistics of the batch,
        biased variance in the running average, as ``tf.nn.moments``), else the running statistics."""
        tf = self._tf
        v = self.vars
        if not training:
            return tf.nn.batch_normalization(h, v[f"bn_mean{i}"], v[f"bn_var{i}"], v[f"bn_beta{i}"],
                                             v[f"bn_gamma{i}"], eps)
        units = h.shape[-1]
        y, mean, var = tf.compat.v1.nn.fused_batch_norm(tf.reshape(h, [-1, 1, 1, units]), v[f"bn_gamma{i}"],
                                                        v[f"bn_beta{i}"], epsilon=eps, is_training=True)
        n = tf.cast(tf.shape(h)[0], tf.float32)
        var = var * tf.maximum(n - 1.0, 0.0) / n  # the kernel returns the unbiased batch variance
        v[f"bn_mean{i}"].assign(momentum * v[f"bn_mean{i}"] + (1 - momentum) * mean)
        v[f"bn_var{i}"].assign(momentum * v[f"bn_var{i}"] + (1 - momentum) * var)
        return tf.reshape(y, [-1, units])

    # ------------------------------------------------------------------ likelihoods
    def entry_loss(self, y, eta, offset, genes=None):
        """Per-entry loss (negative log-likelihood, constants included) of a (cells x genes) tile.

        ``offset``: the cells' log size factors, shape (cells, 1); ``genes``: the tile's genes (None:
        every gene); per-gene terms (the NB dispersion) broadcast over the last axis, computed once
        per gene.
        """
        tf = self._tf
        if self.loss == "poisson":
            log_mu = eta + offset
            return tf.exp(log_mu) - y * log_mu + tf.math.lgamma(y + 1.0)
        if self.loss == "nb":
            log_mu = eta + offset
            log_theta = self.vars["log_theta"] if genes is None else tf.gather(self.vars["log_theta"], genes)
            theta = tf.exp(log_theta)
            log_tm = tf.maximum(log_theta, log_mu) + tf.math.log1p(tf.exp(-tf.abs(log_theta - log_mu)))
            ll = (tf.math.lgamma(y + theta) - tf.math.lgamma(theta) - tf.math.lgamma(y + 1.0)
                  + theta * (log_theta - log_tm) + y * (log_mu - log_tm))
            return -ll
        if self.loss == "mse":
            return tf.square(y - eta)
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=eta)

    def mean(self, eta, offset):
        """The prediction on the data scale (see module docstring) from ``eta`` and log-offset."""
        tf = self._tf
        if self.loss in COUNT_LOSSES:
            return tf.exp(eta + offset)
        if self.loss == "mse":
            return tf.nn.relu(eta)
        return tf.sigmoid(eta)

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        """Every variable (weights, batch-norm statistics) as a numpy array, keyed by name."""
        return {n: np.asarray(v.numpy()) for n, v in zip(self.state_names, self.state)}

    def set_state(self, arrays: dict, names=None) -> None:
        """Assign variables from ``arrays`` (all of ``state_names``, or only ``names``)."""
        for n, v in zip(self.state_names, self.state):
            if names is None or n in names:
                v.assign(np.asarray(arrays[n], dtype=np.float32).reshape(v.shape))


def init_from_pretrained(neumf: NeuMF, gmf: NeuMF, mlp: NeuMF, alpha: float = 0.5) -> None:
    """NCF pretraining: copy GMF and MLP towers into a NeuMF model, output layer weighted by alpha."""
    gs, ms = gmf.get_state(), mlp.get_state()
    state = {}
    for n in neumf.names:
        if n.startswith("gmf_"):
            state[n] = gs[n]
        elif n.startswith(("mlp_", "bn_")):
            state[n] = ms[n]
    state["out_w"] = np.concatenate([alpha * gs["out_w"], (1 - alpha) * ms["out_w"]], axis=0)
    state["out_b"] = alpha * gs["out_b"] + (1 - alpha) * ms["out_b"]
    state["gene_bias"] = alpha * gs["gene_bias"] + (1 - alpha) * ms["gene_bias"]
    if "log_theta" in neumf.names:
        state["log_theta"] = alpha * gs["log_theta"] + (1 - alpha) * ms["log_theta"]
    neumf.set_state(state, names=set(state))


def gene_bias_init(x, loss: str, size_factors: np.ndarray) -> np.ndarray:
    """Starting per-gene bias from CSR counts ``x``: log mean rate (count losses), mean count (mse), 0 (bce)."""
    n = x.shape[0]
    if loss in COUNT_LOSSES:
        # sum over cells of count / size factor
        rate = _weighted_column_sums(x, 1.0 / np.asarray(size_factors, np.float64)) / n
        return np.log(np.maximum(rate, 1e-4))
    if loss == "mse":
        return _weighted_column_sums(x, np.ones(n)) / n
    return np.zeros(x.shape[1])


#: stored entries of the counts weighted at a time by `_weighted_column_sums`
_ENTRIES_PER_CHUNK = 1 << 20


def _weighted_column_sums(x, w: np.ndarray) -> np.ndarray:
    """``x.T @ w`` (float64) for a CSR matrix ``x`` (or a `scfactor.densify.spill.SpilledCSR`) without a float64
    copy of all its values (scipy makes one for a float32 ``x``): each entry's value times its row's weight is added
    in the same order as scipy's product adds it (entry by entry, row after row: `np.add.at` accumulates in order),
    so the sums are the same to the last bit, with the float64 values of about ``_ENTRIES_PER_CHUNK`` entries at a
    time."""
    from .spill import row_chunks
    out = np.zeros(x.shape[1])
    for a, b, block in row_chunks(x, _ENTRIES_PER_CHUNK):
        np.add.at(out, block.indices, block.data.astype(np.float64) * np.repeat(w[a:b], np.diff(block.indptr)))
    return out
