"""The numpy engine computes the TensorFlow engine's model: same loss and gradients, same training up to float32 rounding."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scfactor.core.device import configure_tf
from scfactor.mtl import data as mtl_data
from scfactor.mtl import layout as L
from scfactor.mtl import model as tfm
from scfactor.mtl import model_np as npm
from scfactor.mtl import training
from scfactor.mtl.cli import SIMULATE, TRAIN_SHARD
from scfactor.mtl.simulate import simulate_layout


@pytest.fixture(scope="module")
def shard(layout):
    root, cl = layout
    d = L.load_tissue(root, "tissue1")
    genes = pd.read_csv(cl, sep="\t").query("cluster == 0")["gene_ensembl"].to_numpy()
    return mtl_data.build_shard(d, genes, 0.1, 0, 0)


def _tf_gradients(sh, init, idx, lam, l1, axis):
    import tensorflow as tf
    m = tfm.BatchedMTL(sh.n_genes, sh.n_tfs, seed=0, init=init)
    with tf.GradientTape() as tape:
        e = tf.gather(tf.constant(sh.expr), idx)
        y = tf.gather(tf.constant(np.nan_to_num(sh.y)), idx, batch_dims=1)
        mse = tf.reduce_mean(tf.square(y - m(e, tf.constant(sh.A), tf.constant(sh.C))))
        tn = 0.5 * (tfm.trace_norm(m.vars["W1"], axis) + tfm.trace_norm(m.vars["W2"], axis))
        pen = tf.add_n([tf.reduce_sum(tf.abs(k)) for k in m.l1_kernels()]) / m.G
        loss = mse + lam * tn + l1 * pen
    return float(loss), float(tn), dict(zip(m.names, (g.numpy() for g in tape.gradient(loss, m.variables))))


@pytest.mark.parametrize("axis,l1", [("task", 0.0), ("input", 0.01), ("output", 0.0)])
def test_loss_and_gradients_equal_tensorflow(shard, axis, l1):
    """Hand-written backward pass (and the Gram-matrix trace norm) = TensorFlow's autodiff, to float32 rounding."""
    configure_tf(0)
    init = training.initial_weights(shard.n_genes, shard.n_tfs, seed=4)
    idx = mtl_data.epoch_batches(shard.train, 32, np.random.default_rng(1))[0]
    ax = training.UNFOLD_AXES[axis]
    loss_tf, tn_tf, g_tf = _tf_gradients(shard, init, idx, 0.01, l1, ax)
    y = np.nan_to_num(shard.y)[np.arange(shard.n_genes)[:, None], idx]
    loss, _, tn, g = npm.NumpyMTL(init).gradients(shard.expr[idx], y, shard.A, shard.C, 0.01, l1, ax)
    np.testing.assert_allclose([loss, tn], [loss_tf, tn_tf], rtol=2e-6)
    for k, ref in g_tf.items():
        np.testing.assert_allclose(g[k], ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max(), err_msg=k)


def test_nuclear_norm_gradient_is_uvt_of_the_svd():
    """The Gram-matrix route gives the float64 SVD's sum of singular values and U V^T (wide, tall, rank-deficient)."""
    rng = np.random.default_rng(0)
    for shape in ((5, 40), (40, 5)):
        m = rng.standard_normal(shape).astype(np.float32)
        u, s, vt = np.linalg.svd(m.astype(np.float64), full_matrices=False)
        value, g = npm.nuclear_norm(m)
        np.testing.assert_allclose(value, s.sum(), rtol=1e-6)
        np.testing.assert_allclose(g, u @ vt, atol=1e-5)
    low = (rng.standard_normal((6, 2)) @ rng.standard_normal((2, 30))).astype(np.float32)   # rank 2
    u, s, vt = np.linalg.svd(low.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(npm.nuclear_norm(low, grad=False)[0], s.sum(), rtol=1e-6)
    # rank-deficient: the gradient is U_r V_r^T of the nonzero singular values (null directions left out)
    np.testing.assert_allclose(npm.nuclear_norm(low)[1], u[:, :2] @ vt[:2], atol=1e-5)


def test_adam_steps_follow_tensorflow(shard):
    """Ten Adam steps of both engines from the same weights on the same batches stay within float32 noise of
    each other: no further apart than TensorFlow from itself with W1 moved by one ulp."""
    configure_tf(0)
    opts = TRAIN_SHARD.defaults(batch_size=32)
    init = training.initial_weights(shard.n_genes, shard.n_tfs, seed=4)
    ulp = dict(init, W1=np.nextafter(init["W1"], np.float32(np.inf)))
    engines = [tfm.TFEngine(shard, opts, init), npm.NumpyEngine(shard, opts, init), tfm.TFEngine(shard, opts, ulp)]
    batches = mtl_data.epoch_batches(shard.train, 32, np.random.default_rng(2))[:10]
    losses = [[e.step(idx)[0] for idx in batches] for e in engines]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    w = [e.model.arrays() for e in engines]
    gap = max(np.abs(w[1][k] - w[0][k]).max() for k in w[0])
    ulp_gap = max(np.abs(w[2][k] - w[0][k]).max() for k in w[0])
    assert gap <= max(10 * ulp_gap, 1e-5), (gap, ulp_gap)


def test_trained_engines_agree_far_below_the_trace_norm_gain(tmp_path):
    """Whole trainings on planted data (15 epochs): both engines show the trace-norm gain over lambda = 0, and
    their test R2 differ by a small fraction of it (ReLU training amplifies float32 rounding differences,
    so the engines are not bit-equal after hundreds of steps)."""
    sim = SIMULATE.defaults(n_tissues=1, n_cells=300, n_genes=12, n_tfs=40, planted_clusters=1, rank=2, support=8,
                            noise=0.7, seed=1)
    d = L.load_tissue(simulate_layout(tmp_path / "planted", sim), "tissue1")
    sh = mtl_data.build_shard(d, d.gene_ids, 0.2, 0, 0)
    configure_tf(0)
    seq = mtl_data.shard_seed(0, "tissue1", 0, 0)
    r2 = {}
    for name, mod in (("tf", tfm), ("numpy", npm)):
        for lam in (0.03, 0.0):
            opts = TRAIN_SHARD.defaults(epochs=15, batch_size=64, lam=lam, l1=0.0)
            r2[name, lam] = mod.test_r2(mod.train_shard(sh, opts, seed_seq=seq, log_every=100)[0], sh)
    gain = {e: r2[e, 0.03].mean() - r2[e, 0.0].mean() for e in ("tf", "numpy")}
    assert gain["numpy"] > 0.03 and gain["tf"] > 0.03, gain
    for lam in (0.03, 0.0):
        assert abs(r2["numpy", lam].mean() - r2["tf", lam].mean()) < 0.25 * gain["tf"], (lam, gain)


def test_numpy_shard_process_imports_neither_tensorflow_nor_scipy(layout, tmp_path):
    """A numpy-engine shard process (the paper run's 1200 jobs) never imports TensorFlow, Keras or scipy: their
    imports would cost more CPU than the shard's training at the paper's size."""
    root, cl = layout
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from scfactor.mtl.cli import mtl_train_shard; "
            "rc = mtl_train_shard(sys.argv[2:]); "
            "print(rc, sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'scipy', 'sklearn'}))")
    args = ["--layout", str(root), "--tissue", "tissue1", "--clusters", str(cl), "--cluster", "0", "--rep", "0",
            "--epochs", "1", "--batch-size", "16", "--engine", "numpy",
            "--output", str(tmp_path / "s.tsv"), "--weights", str(tmp_path / "s.npz")]
    p = subprocess.run([sys.executable, "-c", code, str(Path(npm.__file__).parents[2]), *args],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split()[-2:] == ["0", "[]"], p.stdout
