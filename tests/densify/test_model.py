"""NeuMF training: recovery of planted low-rank counts, block prediction, pretraining, several replicas."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import REPO
from densify.data import cpu_strategy, planted_counts
from scfactor.densify import heldout
from scfactor.densify.cli import DENSIFY


@pytest.fixture(scope="module")
def tf_cpu():
    return cpu_strategy()


@pytest.mark.parametrize("arch,loss", [("neumf", "poisson"), ("gmf", "nb")])
def test_recovers_planted_low_rank_poisson(tf_cpu, arch, loss):
    from scfactor.densify.train import fit, predict_dense
    x, mu = planted_counts()
    train, held = heldout.mask_nonzeros(x, 0.1, seed=0)
    opts = DENSIFY.defaults(arch=arch, loss=loss, embedding_dim=8, layers=(16, 8), epochs=15, block_entries=1024,
                            lr=0.01)
    res = fit(train, opts, tf_cpu)
    pred = predict_dense(res.model, res.offset, *x.shape, block_entries=1000)
    assert pred.dtype == np.float32 and pred.shape == x.shape and np.all(pred >= 0)
    t = heldout.evaluate({"model": pred[held.rows, held.cols], "zero": np.zeros(len(held))}, held)
    t = t.set_index("method")
    assert t.loc["model", "rmse"] < 0.8 * t.loc["zero", "rmse"]
    assert t.loc["model", "median_abs_error"] < t.loc["zero", "median_abs_error"]
    assert t.loc["model", "pearson_log1p"] > 0.5
    # the model tracks the planted means (all entries, not only the hidden ones)
    r = np.corrcoef(np.log(pred.ravel()), np.log(mu.ravel()))[0, 1]
    assert r > 0.7
    losses = [e["loss"] for e in res.trace[arch]]
    assert losses[-1] < losses[0]


def test_block_prediction_does_not_depend_on_block_size(tf_cpu):
    from scfactor.densify.train import fit, predict_dense
    x, _ = planted_counts(40, 30)
    res = fit(x, DENSIFY.defaults(embedding_dim=4, layers=(8, 4), epochs=1, block_entries=256, block_genes=8), tf_cpu)
    a = predict_dense(res.model, res.offset, *x.shape, block_entries=1)  # one cell per block
    b = predict_dense(res.model, res.offset, *x.shape, block_entries=10 ** 6)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    # a tile of some cells x some genes (training's form) is the per-pair model at those pairs
    cells, genes = np.array([3, 7, 11], np.int32), np.array([2, 5, 29], np.int32)
    tile = res.model.grid_logits(cells, genes).numpy()
    c, g = np.meshgrid(cells, genes, indexing="ij")
    pairs = res.model.logits(c.ravel(), g.ravel()).numpy().reshape(tile.shape)
    np.testing.assert_allclose(tile, pairs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.model.grid_logits(cells).numpy()[:, genes], tile, rtol=1e-5, atol=1e-6)


def test_pretraining_learns_and_implicit_loss_runs(tf_cpu):
    """NCF pretraining: each tower's loss falls over its epochs, and NeuMF starts from what they learned."""
    from scfactor.densify.train import fit, predict_dense
    x, _ = planted_counts(60, 40)
    res = fit(x, DENSIFY.defaults(loss="bce", embedding_dim=4, layers=(8, 4), epochs=1, pretrain_epochs=4,
                                  block_entries=256), tf_cpu)
    assert set(res.trace) == {"pretrain_gmf", "pretrain_mlp", "neumf"}
    for phase in ("pretrain_gmf", "pretrain_mlp"):
        loss = [e["loss"] for e in res.trace[phase]]
        assert len(loss) == 4 and loss[-1] < loss[0], (phase, loss)
    cold = fit(x, DENSIFY.defaults(loss="bce", embedding_dim=4, layers=(8, 4), epochs=1, pretrain_epochs=0,
                                   block_entries=256), tf_cpu)
    assert res.trace["neumf"][0]["loss"] < cold.trace["neumf"][0]["loss"]
    p = predict_dense(res.model, res.offset, *x.shape, block_entries=DENSIFY.defaults().predict_block)
    assert np.all((p >= 0) & (p <= 1))


def test_training_with_dropout_needs_the_optimiser_step(tf_cpu):
    """Dropout masks are keyed by the optimiser's step counter; training without it is a programming error."""
    from scfactor.densify.train import build_model, size_factors
    x, _ = planted_counts(20, 10)
    opts = DENSIFY.defaults(arch="mlp", embedding_dim=4, layers=(8, 4))
    model = build_model("mlp", x, size_factors(x), opts, tf_cpu)
    with pytest.raises(ValueError, match="step"):
        model.grid_logits(np.arange(4, dtype=np.int32), training=True)


MIRRORED = r'''
import json, sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from densify.data import planted_counts
from scfactor.densify.cli import DENSIFY
from scfactor.densify.train import fit
x, _ = planted_counts(100, 60)
opts = DENSIFY.defaults(arch="neumf", loss="nb", embedding_dim=8, layers=(16, 8), epochs=3, block_entries=512,
                        block_genes=32, lr=0.01)
out = {}
for name, st in [("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                 ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
    res = fit(x, opts, st)
    out[name] = [st.num_replicas_in_sync, [e["loss"] for e in res.trace["neumf"]]]
print(json.dumps(out))
'''


def test_mirrored_strategy_on_two_logical_cpus_matches_one_device():
    """The multi-replica train step (all-reduced gradients, replicated updates) tracks one device."""
    proc = subprocess.run([sys.executable, "-c", MIRRORED, str(REPO / "workflow"), str(REPO / "tests")],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["one"][0] == 1 and out["mirrored"][0] == 2
    # same data, same updates up to per-replica batch norm / dropout masks
    np.testing.assert_allclose(out["mirrored"][1], out["one"][1], rtol=0.02)
    assert out["mirrored"][1][-1] < out["mirrored"][1][0]


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
def test_gene_bias_start_equals_the_sparse_product_to_the_last_bit(monkeypatch, chunk):
    """The chunked weighted column sums add in scipy's order: the same float64 sums as ``x.T @ w``, for any chunk."""
    from scfactor.densify import model as model_mod
    monkeypatch.setattr(model_mod, "_ENTRIES_PER_CHUNK", chunk)
    rng = np.random.default_rng(3)
    x = sp.random(300, 40, density=0.3, format="csr", random_state=3, dtype=np.float32)
    x.data = np.ceil(x.data * 30).astype(np.float32)
    x[7] = 0  # an empty row
    x.eliminate_zeros()
    w = 1.0 / rng.gamma(2.0, 0.5, x.shape[0])
    np.testing.assert_array_equal(model_mod._weighted_column_sums(x, w), np.asarray(x.T @ w).ravel())
