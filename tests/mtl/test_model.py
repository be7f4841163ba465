"""Trace-norm MTL model: features, batches, trace norm, the batched network, training and checkpoints."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pandas as pd

from conftest import REPO
from scfactor.core.device import configure_tf
from scfactor.mtl import data as mtl_data
from scfactor.mtl import layout as L
from scfactor.mtl.cli import SIMULATE, TRAIN_SHARD
from scfactor.mtl.simulate import simulate_layout


def test_features_equal_notebook_construction(layout):
    """A*e + C reproduces the notebook's explicit 5 features, standardised with training statistics."""
    root, cl = layout
    d = L.load_tissue(root, "tissue1")
    genes = pd.read_csv(cl, sep="\t")["gene_ensembl"].to_numpy()[:3]
    sh = mtl_data.build_shard(d, genes, 0.1, 0, 0)
    g = 1
    gp = list(d.gene_ids).index(genes[g])
    tr = sh.train[g]
    for t in range(d.expr.shape[1]):
        e = d.expr[tr, t].astype(np.float64)
        raw = np.stack([e, np.full_like(e, d.act_mean[gp, t]), np.full_like(e, d.act_sum[gp, t]),
                        e * d.act_mean[gp, t], e * d.act_sum[gp, t]], axis=1)
        for c in (0, 3, 4):   # the notebook standardises columns 0, 3, 4 when their sd is not 0
            if np.std(raw[:, c]) > 1e-12:
                raw[:, c] = (raw[:, c] - raw[:, c].mean()) / raw[:, c].std()
        ours = mtl_data.explicit_features(d.expr[tr][:, [t]], sh.A[g][[t]], sh.C[g][[t]])[:, 0, :]
        np.testing.assert_allclose(ours, raw, rtol=1e-4, atol=1e-4)


def test_epoch_batches_equalise_genes():
    rng = np.random.default_rng(0)
    train = [np.arange(10), np.arange(100, 125), np.arange(200, 203)]
    b = mtl_data.epoch_batches(train, 8, rng)
    assert [x.shape for x in b] == [(3, 8), (3, 8), (3, 8), (3, 1)]
    allidx = np.concatenate(b, axis=1)
    assert set(allidx[1]) == set(train[1]) and set(allidx[0]) == set(train[0])


def test_trace_norm_gradient_matches_finite_differences():
    import tensorflow as tf
    from scfactor.mtl.model import nuclear_norm, trace_norm
    rng = np.random.default_rng(0)
    x = tf.Variable(rng.standard_normal((5, 7)))
    with tf.GradientTape() as tape:
        y = nuclear_norm(x)
    g = tape.gradient(y, x).numpy()
    np.testing.assert_allclose(float(y), np.linalg.svd(x.numpy(), compute_uv=False).sum(), rtol=1e-10)
    eps, fd = 1e-6, np.zeros_like(g)
    for i in range(5):
        for j in range(7):
            d = np.zeros((5, 7))
            d[i, j] = eps
            fd[i, j] = (np.linalg.svd(x.numpy() + d, compute_uv=False).sum()
                        - np.linalg.svd(x.numpy() - d, compute_uv=False).sum()) / (2 * eps)
    np.testing.assert_allclose(g, fd, atol=1e-6)
    # the tensor version (genes x in x out, unfolded along each axis)
    w = tf.Variable(rng.standard_normal((4, 3, 6)))
    for axis in (0, 1, 2):
        with tf.GradientTape() as tape:
            y = trace_norm(w, axis)
        g = tape.gradient(y, w).numpy()
        k = (2, 1, 4)
        d = np.zeros(w.shape)
        d[k] = eps

        def tn(a):
            return np.linalg.svd(np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1), compute_uv=False).sum()
        fd = (tn(w.numpy() + d) - tn(w.numpy() - d)) / (2 * eps)
        assert abs(g[k] - fd) < 1e-6


def test_batched_model_equals_per_gene_keras(layout):
    """The batched network computes exactly the notebook's per-gene Keras models with the same weights."""
    import tensorflow as tf
    sys.path.insert(0, str(REPO / "benchmarks" / "mtl"))
    from seed_keras import build_model, load_batched_weights
    from scfactor.mtl.model import BatchedMTL
    root, cl = layout
    d = L.load_tissue(root, "tissue1")
    genes = pd.read_csv(cl, sep="\t")["gene_ensembl"].to_numpy()[:2]
    sh = mtl_data.build_shard(d, genes, 0.1, 0, 0)
    model = BatchedMTL(sh.n_genes, sh.n_tfs, seed=1)
    rows = np.stack([t[:20] for t in sh.test + sh.train][:2])
    pred = model(tf.gather(tf.constant(sh.expr), rows), tf.constant(sh.A), tf.constant(sh.C)).numpy()
    for g in range(2):
        km = build_model(sh.n_tfs, 5)
        load_batched_weights(km, model, g)
        x = mtl_data.explicit_features(sh.expr[rows[g]], sh.A[g], sh.C[g])
        ref = km([x[:, t, :] for t in range(sh.n_tfs)]).numpy()[:, 0]
        np.testing.assert_allclose(pred[g], ref, rtol=1e-4, atol=1e-5)


def test_mtl_beats_independent_tasks_on_planted_data(tmp_path):
    """Few cells, many TFs, genes sharing a rank-2 map: the trace norm pools them."""
    from scfactor.mtl import model as mtl
    sim = SIMULATE.defaults(n_tissues=1, n_cells=300, n_genes=12, n_tfs=40, planted_clusters=1, rank=2, support=8,
                            noise=0.7, seed=1)
    root = simulate_layout(tmp_path / "planted", sim)
    d = L.load_tissue(root, "tissue1")
    sh = mtl_data.build_shard(d, d.gene_ids, 0.2, 0, 0)
    configure_tf(0)
    r2 = {}
    for lam in (0.03, 0.0):
        m, _ = mtl.train_shard(sh, TRAIN_SHARD.defaults(epochs=15, batch_size=64, lam=lam, l1=0.0),
                               seed_seq=mtl_data.shard_seed(0, "tissue1", 0, 0), log_every=100)
        r2[lam] = mtl.test_r2(m, sh)
    assert r2[0.03].mean() > r2[0.0].mean() + 0.03, r2
    assert (r2[0.03] > r2[0.0]).mean() >= 0.6, r2


def _weights(model):
    return {k: v.numpy() for k, v in model.vars.items()}


def test_checkpoint_resumes_only_its_own_run(layout, tmp_path, caplog):
    """A checkpoint resumes the same shard and settings exactly; more epochs, another lambda or other
    data make it stale (discarded with a warning, training starts over)."""
    from scfactor.mtl import model as mtl
    root, cl = layout
    d = L.load_tissue(root, "tissue1")
    genes = pd.read_csv(cl, sep="\t").query("cluster == 0")["gene_ensembl"].to_numpy()
    sh = mtl_data.build_shard(d, genes, 0.1, 0, 0)
    seq = mtl_data.shard_seed(0, "tissue1", 0, 0)
    configure_tf(0)

    def train(ck, **kw):
        opts = TRAIN_SHARD.defaults(**dict(dict(epochs=3, batch_size=16, checkpoint_seconds=0), **kw))
        return mtl.train_shard(sh, opts, seed_seq=seq, checkpoint_dir=ck)[0]

    fresh4 = _weights(train(None, epochs=4))
    train(tmp_path / "ck", epochs=3)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="scfactor"):
        resumed = train(tmp_path / "ck", epochs=3)          # same run: resumes at its end, trains nothing
    assert "resuming from epoch 3" in caplog.text
    with caplog.at_level(logging.INFO, logger="scfactor"):
        caplog.clear()
        longer = _weights(train(tmp_path / "ck", epochs=4))  # epochs are part of the fingerprint
    assert "discarding checkpoint" in caplog.text and "resuming" not in caplog.text
    for k, v in fresh4.items():
        np.testing.assert_array_equal(longer[k], v)
    del resumed
    with caplog.at_level(logging.INFO, logger="scfactor"):
        caplog.clear()
        train(tmp_path / "ck", epochs=4, lam=0.0)             # so is lambda
    assert "discarding checkpoint" in caplog.text
    other = mtl_data.build_shard(d, genes, 0.1, 0, 1)        # another replicate's split: other data
    assert mtl.shard_fingerprint(other, {}) != mtl.shard_fingerprint(sh, {})
