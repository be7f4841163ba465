"""NeuMF densification: held-out masking/metrics, batch streaming, model recovery, resume, bad inputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import REPO, SCRIPTS, assert_clean_failure, run_script

sys.path.insert(0, str(REPO / "workflow"))

from scfactor import heldout  # noqa: E402
from scfactor.models.pairs import PairStream  # noqa: E402
from scfactor.smk.densify import densify_args, densify_pairs  # noqa: E402


# --------------------------------------------------------------------------- helpers
def planted_counts(n_cells=200, n_genes=80, rank=3, seed=0):
    """Poisson counts with a planted rank-``rank`` log-mean and varying library sizes."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 0.6, (n_cells, rank))
    v = rng.normal(0, 0.6, (n_genes, rank))
    lib = rng.lognormal(0, 0.3, n_cells)
    mu = lib[:, None] * np.exp(u @ v.T + rng.normal(0.3, 0.5, n_genes)[None, :])
    return sp.csr_matrix(rng.poisson(mu).astype(np.int32)), mu


def write_preprocessed(path, counts, batch="b1", float_counts=False):
    """A minimal preprocessed-style .h5ad: layers['counts'], obs['batch'], var['liger_selected']."""
    import anndata as ad
    counts = sp.csr_matrix(counts)
    n, m = counts.shape
    a = ad.AnnData(X=counts.astype(np.float32),
                   obs=pd.DataFrame({"batch": pd.Categorical([batch] * n)}, index=[f"c{i}" for i in range(n)]),
                   var=pd.DataFrame({"liger_selected": np.ones(m, bool)}, index=[f"g{j}" for j in range(m)]))
    a.layers["counts"] = counts.astype(np.float32) if float_counts else counts.astype(np.int32)
    a.write_h5ad(path)
    return path


def densify_cmd(inp, out_dir, *extra, epochs=2):
    out_dir = Path(out_dir)
    return [str(SCRIPTS / "densify.py"), "--input", str(inp), "--batch", "b1", "--genes", "all",
            "--epochs", str(epochs), "--batch-size", "512", "--embedding-dim", "8", "--layers", "16", "8",
            "--threads", "1", "--output", str(out_dir / "out.h5ad"),
            "--heldout-table", str(out_dir / "out.tsv"), *map(str, extra)]


# --------------------------------------------------------------------------- held-out evaluation
def test_mask_nonzeros_hides_a_seeded_fraction():
    x, _ = planted_counts()
    train, held = heldout.mask_nonzeros(x, 0.1, seed=3)
    assert len(held) == round(0.1 * x.nnz)
    assert train.nnz == x.nnz - len(held)
    assert np.all(np.asarray(train[held.rows, held.cols]).ravel() == 0)
    np.testing.assert_array_equal(np.asarray(x[held.rows, held.cols]).ravel(), held.values)
    restored = train + sp.csr_matrix((held.values, (held.rows, held.cols)), shape=x.shape)
    assert (restored != x).nnz == 0
    _, again = heldout.mask_nonzeros(x, 0.1, seed=3)
    _, other = heldout.mask_nonzeros(x, 0.1, seed=4)
    np.testing.assert_array_equal(held.rows, again.rows)
    assert not np.array_equal(held.rows, other.rows)


def test_heldout_metrics_values():
    obs = np.array([1.0, 2.0, 5.0, 10.0])
    m = heldout.heldout_metrics(obs.copy(), obs)
    assert m["pearson_log1p"] == pytest.approx(1.0) and m["spearman_log1p"] == pytest.approx(1.0)
    assert m["rmse"] == 0 and m["median_abs_error"] == 0
    z = heldout.heldout_metrics(np.zeros(4), obs)
    assert np.isnan(z["pearson_log1p"])
    assert z["median_abs_error"] == pytest.approx(3.5)
    assert z["rmse"] == pytest.approx(np.sqrt(np.mean(obs ** 2)))


def test_svd_baseline_recovers_low_rank_better_than_zeros():
    x, _ = planted_counts()
    train, held = heldout.mask_nonzeros(x, 0.1, seed=0)
    t = heldout.evaluate(heldout.baselines(train, held, rank=3), held).set_index("method")
    assert t.loc["svd_rank3", "pearson_log1p"] > 0.3
    assert t.loc["svd_rank3", "rmse"] < t.loc["zero", "rmse"]


# --------------------------------------------------------------------------- streaming batches
def _collect(stream, epoch):
    parts = list(stream.epoch(epoch))
    return [np.concatenate([p[i] for p in parts]) for i in range(4)]


def test_pointwise_epoch_visits_every_entry_once_in_a_new_order():
    x, _ = planted_counts(50, 30)
    s = PairStream(x, batch_size=256, seed=1, chunk_entries=300)
    c, g, y, w = _collect(s, 0)
    real = w > 0
    assert real.sum() == 50 * 30
    keys = c[real].astype(np.int64) * 30 + g[real]
    assert np.unique(keys).size == 50 * 30
    np.testing.assert_array_equal(y[real], x.toarray()[c[real], g[real]])
    c0, g0, _, _ = _collect(s, 0)
    c1, _, _, _ = _collect(s, 1)
    np.testing.assert_array_equal(c, c0)
    assert not np.array_equal(c, c1)
    assert all(p[0].size == 256 for p in s.epoch(0))


def test_zero_subsampling_weights_are_unbiased():
    x, _ = planted_counts(300, 40)
    s = PairStream(x, batch_size=1024, seed=0, zero_keep=0.2)
    est = []
    for e in range(5):
        c, g, y, w = _collect(s, e)
        n_kept = (w > 0).sum()
        est.append((w * (y == 0)).sum() / n_kept)  # estimates the fraction of zeros in the matrix
        np.testing.assert_allclose((w * y).sum() / n_kept, x.sum() / (300 * 40), rtol=0.05)
    frac_zero = 1 - x.nnz / (300 * 40)
    assert np.mean(est) == pytest.approx(frac_zero, rel=0.05)
    assert s.samples_per_epoch < 0.8 * 300 * 40


def test_implicit_negatives_are_zeros():
    x, _ = planted_counts(60, 200)
    s = PairStream(x, batch_size=512, seed=0, mode="implicit", num_neg=3)
    c, g, y, w = _collect(s, 0)
    real = w > 0
    dense = x.toarray()
    assert (y[real] == 1).sum() == x.nnz
    assert np.all(dense[c[real & (y == 0)], g[real & (y == 0)]] == 0)
    assert np.all(dense[c[real & (y == 1)], g[real & (y == 1)]] > 0)


# --------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def tf_cpu():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(2)
    except RuntimeError:
        pass
    return tf.distribute.OneDeviceStrategy("/cpu:0")


@pytest.mark.parametrize("arch,loss", [("neumf", "poisson"), ("gmf", "nb")])
def test_recovers_planted_low_rank_poisson(tf_cpu, arch, loss):
    from scfactor.models.neumf_train import FitConfig, fit, predict_dense
    x, mu = planted_counts()
    train, held = heldout.mask_nonzeros(x, 0.1, seed=0)
    cfg = FitConfig(arch=arch, loss=loss, emb_dim=8, layers=(16, 8), epochs=15, batch_size=1024, lr=0.01)
    res = fit(train, cfg, tf_cpu)
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
    from scfactor.models.neumf_train import FitConfig, fit, predict_dense
    x, _ = planted_counts(40, 30)
    res = fit(x, FitConfig(emb_dim=4, layers=(8, 4), epochs=1, batch_size=256), tf_cpu)
    a = predict_dense(res.model, res.offset, *x.shape, block_entries=1)  # one cell per block
    b = predict_dense(res.model, res.offset, *x.shape, block_entries=10 ** 6)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_pretraining_and_implicit_loss_run(tf_cpu):
    from scfactor.models.neumf_train import FitConfig, fit, predict_dense
    x, _ = planted_counts(60, 40)
    res = fit(x, FitConfig(loss="bce", emb_dim=4, layers=(8, 4), epochs=1, pretrain_epochs=1,
                           batch_size=256), tf_cpu)
    assert set(res.trace) == {"pretrain_gmf", "pretrain_mlp", "neumf"}
    p = predict_dense(res.model, res.offset, *x.shape)
    assert np.all((p >= 0) & (p <= 1))


# --------------------------------------------------------------------------- the script
def test_script_writes_the_output_contract(tmp_path):
    x, _ = planted_counts(80, 50)
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    import anndata as ad
    proc = subprocess.run([sys.executable, *densify_cmd(inp, tmp_path, "--loss", "poisson")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "samples/s" in proc.stderr and "ETA" in proc.stderr
    a = ad.read_h5ad(tmp_path / "out.h5ad")
    assert a.layers["neumf"].dtype == np.float32 and a.layers["neumf"].shape == (80, 50)
    assert (sp.csr_matrix(a.layers["counts"]) != x).nnz == 0
    assert list(a.obs["batch"].unique()) == ["b1"]
    u = a.uns["neumf"]
    assert set(u["heldout"]) == {"neumf_poisson", "zero", "svd_rank20"}
    assert u["params"]["loss"] == "poisson" and len(u["trace"]["neumf"]["loss"]) == 2
    t = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    assert list(t["method"]) == ["neumf_poisson", "zero", "svd_rank20"]
    assert t.set_index("method").loc["neumf_poisson", "n"] == round(0.1 * x.nnz)


def test_killed_training_resumes_from_checkpoint_and_matches_uninterrupted_run(tmp_path):
    """SIGKILL a real training run after its first checkpoint, rerun, compare with an uninterrupted run."""
    import anndata as ad
    x, _ = planted_counts(300, 100, seed=1)
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    epochs = 5
    killed, full = tmp_path / "killed", tmp_path / "full"
    killed.mkdir()
    full.mkdir()
    ckpt = killed / "ckpt"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, *densify_cmd(inp, killed, "--checkpoint-dir", ckpt, epochs=epochs)]
    # the uninterrupted reference run goes alongside
    ref = subprocess.Popen([sys.executable, *densify_cmd(inp, full, epochs=epochs)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    while not (ckpt / "neumf.npz").exists():
        assert proc.poll() is None, "training ended before its first checkpoint: " + proc.stderr.read()[-2000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "out.h5ad").exists()
    with np.load(ckpt / "neumf.npz") as z:
        import json
        saved = json.loads(str(z["__meta__"]))["epoch"]
    assert 1 <= saved < epochs

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from epoch {saved}" in again.stderr
    trained = [ln for ln in again.stderr.splitlines() if "neumf epoch" in ln]
    assert len(trained) == epochs - saved and f"epoch {saved + 1}/{epochs}" in trained[0]

    _, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err[-3000:]
    a, b = ad.read_h5ad(killed / "out.h5ad"), ad.read_h5ad(full / "out.h5ad")
    np.testing.assert_array_equal(a.layers["neumf"], b.layers["neumf"])
    assert (killed / "out.tsv").read_bytes() == (full / "out.tsv").read_bytes()
    la = a.uns["neumf"]["trace"]["neumf"]["loss"]
    lb = b.uns["neumf"]["trace"]["neumf"]["loss"]
    np.testing.assert_array_equal(la, lb)


# --------------------------------------------------------------------------- bad inputs
def test_non_count_data_with_count_loss_fails_cleanly(tmp_path):
    x, _ = planted_counts(30, 20)
    xf = sp.csr_matrix(x, dtype=np.float32)
    xf.data = xf.data * 0.5 + 0.25
    inp = write_preprocessed(tmp_path / "in.h5ad", xf, float_counts=True)
    proc = _run(inp, tmp_path, "--loss", "nb")
    assert_clean_failure(proc, mentions=str(inp), outputs=[tmp_path / "out.h5ad", tmp_path / "out.tsv"])
    assert "non-integer" in proc.stderr and "--loss mse" in proc.stderr


def _run(inp, tmp_path, *extra):
    cmd = densify_cmd(inp, tmp_path, *extra)
    return run_script(Path(cmd[0]).name, *cmd[1:])


def test_empty_and_all_zero_matrices_fail_cleanly(tmp_path):
    empty = write_preprocessed(tmp_path / "empty.h5ad", sp.csr_matrix((5, 0), dtype=np.int32))
    proc = _run(empty, tmp_path)
    assert_clean_failure(proc, mentions=str(empty), outputs=[tmp_path / "out.h5ad", tmp_path / "out.tsv"])
    assert "empty" in proc.stderr
    zeros = write_preprocessed(tmp_path / "zeros.h5ad", sp.csr_matrix((6, 4), dtype=np.int32))
    proc = _run(zeros, tmp_path)
    assert_clean_failure(proc, mentions=str(zeros), outputs=[tmp_path / "out.h5ad", tmp_path / "out.tsv"])
    assert "no nonzero" in proc.stderr


def test_absent_accelerator_fails_cleanly(tmp_path):
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    x, _ = planted_counts(30, 20)
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    proc = _run(inp, tmp_path, "--accelerator", "gpu")
    assert proc.returncode == 2
    errs = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1 and "--accelerator gpu" in errs[0] and "no GPU" in errs[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.h5ad").exists() and not (tmp_path / "out.tsv").exists()


def test_missing_batch_and_bad_option_fail_cleanly(tmp_path):
    x, _ = planted_counts(30, 20)
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    cmd = densify_cmd(inp, tmp_path)
    cmd[cmd.index("--batch") + 1] = "nope"
    proc = run_script(Path(cmd[0]).name, *cmd[1:])
    assert_clean_failure(proc, mentions="nope", outputs=[tmp_path / "out.h5ad"])
    proc = _run(inp, tmp_path, "--heldout-frac", "1.5")
    assert_clean_failure(proc, mentions="--heldout-frac", outputs=[tmp_path / "out.h5ad"])


# --------------------------------------------------------------------------- rule helpers
def test_rule_options_and_targets():
    cfg = {"datasets": {"kang": {"batch_key": "condition", "batches": ["ctrl", "stim"]}, "p": {}},
           "densify": {"targets": {"kang": ["ctrl"], "p": ["all"]}, "genes": "liger", "layer": "counts",
                       "arch": "neumf", "loss": "nb", "embedding_dim": 20, "dropout": 0.2, "bn_layers": 2,
                       "epochs": 3, "batch_size": 100, "lr": 0.01, "zero_keep": 1.0, "num_neg": 4,
                       "pretrain_epochs": 0, "heldout_frac": 0.1, "svd_rank": 20, "predict_block": 1000,
                       "accelerator": "auto", "seed": 0, "layers": [64, 32]}}
    assert densify_pairs(cfg) == [("kang", "ctrl"), ("p", "all")]
    args = densify_args(cfg)
    assert "--loss nb" in args and "--layers 64 32" in args and "--epochs 3" in args
    cfg["densify"]["targets"] = {"kang": ["nope"]}
    with pytest.raises(ValueError, match="nope"):
        densify_pairs(cfg)
    cfg["densify"]["targets"] = {"nope": ["ctrl"]}
    with pytest.raises(ValueError, match="unknown dataset"):
        densify_pairs(cfg)


MIRRORED = r'''
import json, sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from test_densify import planted_counts
from scfactor.models.neumf_train import FitConfig, fit
x, _ = planted_counts(100, 60)
cfg = FitConfig(arch="neumf", loss="nb", emb_dim=8, layers=(16, 8), epochs=3, batch_size=512, lr=0.01)
out = {}
for name, st in [("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                 ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
    res = fit(x, cfg, st)
    out[name] = [st.num_replicas_in_sync, [e["loss"] for e in res.trace["neumf"]]]
print(json.dumps(out))
'''


def test_mirrored_strategy_on_two_logical_cpus_matches_one_device():
    """The multi-replica train step (all-reduced gradients, replicated updates) tracks one device."""
    import json
    proc = subprocess.run([sys.executable, "-c", MIRRORED, str(REPO / "workflow"), str(REPO / "tests")],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["one"][0] == 1 and out["mirrored"][0] == 2
    # same data, same updates up to per-replica batch norm / dropout masks
    np.testing.assert_allclose(out["mirrored"][1], out["one"][1], rtol=0.02)
    assert out["mirrored"][1][-1] < out["mirrored"][1][0]
