"""Trace-norm MTL (seed 001): layout readers, features, model, bad inputs, checkpoint resume."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import REPO, SCRIPTS, assert_clean_failure, run_script

sys.path.insert(0, str(REPO / "workflow"))

from scfactor.core.device import configure_tf  # noqa: E402
from scfactor import mtl_layout as L  # noqa: E402
from scfactor.core.errors import InputError  # noqa: E402
from scfactor.models import mtl_data  # noqa: E402
from scfactor.models.mtl_sim import simulate_layout  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """A small simulated layout (2 tissues) and its clusters table for tissue1."""
    root = tmp_path_factory.mktemp("mtl") / "layout"
    simulate_layout(root, n_tissues=2, n_cells=300, n_genes=8, n_tfs=12, n_clusters=2, support=4, seed=3)
    truth = pd.read_csv(root / "truth" / "genes.tsv", sep="\t")
    t1 = truth[truth["tissue"] == "tissue1"]
    cl = root.parent / "clusters.tsv"
    t1[["gene_ensembl", "cluster"]].to_csv(cl, sep="\t", index=False)
    return root, cl


def copy_layout(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return Path(dst)


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- simulator + readers
def test_simulator_deterministic_and_layout(layout, tmp_path):
    root, _ = layout
    again = simulate_layout(tmp_path / "again", n_tissues=2, n_cells=300, n_genes=8, n_tfs=12, n_clusters=2,
                            support=4, seed=3)
    for rel in ("rpkm.hdf5", "velo.hdf5", "tf_activity/mean_tf/tissue1.csv", "tf_list.csv", "truth/genes.tsv"):
        assert sha(root / rel) == sha(again / rel), rel
    # the seed's own reading code (step 2) works on the files
    with h5py.File(root / "velo.hdf5", "r") as f:
        assert sorted(f.keys()) == ["tissue1", "tissue2"]
        v = np.array(f["tissue1"]["velo"])
        assert v.shape == (300, 8) and np.isnan(v).any() and not np.isnan(v).all()
    act = pd.read_csv(root / "tf_activity/mean_tf/tissue1.csv", index_col=0).transpose()
    assert act.shape == (8, 12) and act.isna().any().any()          # missing entries are empty, read as NaN
    assert "Ensembl ID" in pd.read_csv(root / "tf_list.csv", index_col=0).columns
    d = L.load_tissue(root, "tissue1")
    assert d.expr.shape == (300, 12) and d.velo.shape == (300, 8) and d.act_mean.shape == (8, 12)
    assert d.in_activity.all() and (d.expr >= 0).all()
    truth = pd.read_csv(root / "truth/genes.tsv", sep="\t")
    # planted support is visible in the activity tables: each gene's strongest TFs are its cluster's
    assert set(truth["cluster"]) == {0, 1}


def test_features_equal_seed_construction(layout):
    """A*e + C reproduces the seed's explicit 5 features, standardised with training statistics."""
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
        for c in (0, 3, 4):   # the seed standardises columns 0, 3, 4 when their sd is not 0
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


# --------------------------------------------------------------------------- model
def test_trace_norm_gradient_matches_finite_differences():
    import tensorflow as tf
    from scfactor.models.mtl import nuclear_norm, trace_norm
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
    """The batched network computes exactly the seed's per-gene Keras models with the same weights."""
    import tensorflow as tf
    sys.path.insert(0, str(REPO / "benchmarks" / "mtl"))
    from seed_keras import build_model, load_batched_weights
    from scfactor.models.mtl import BatchedMTL
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
    from scfactor.models import mtl
    root = simulate_layout(tmp_path / "planted", n_tissues=1, n_cells=300, n_genes=12, n_tfs=40, n_clusters=1,
                           rank=2, support=8, noise=0.7, seed=1)
    d = L.load_tissue(root, "tissue1")
    sh = mtl_data.build_shard(d, d.gene_ids, 0.2, 0, 0)
    configure_tf(0)
    r2 = {}
    for lam in (0.03, 0.0):
        m, _ = mtl.train_shard(sh, epochs=15, batch_size=64, lam=lam, l1=0.0,
                               seed_seq=mtl_data.shard_seed(0, "tissue1", 0, 0), log_every=100)
        r2[lam] = mtl.test_r2(m, sh)
    assert r2[0.03].mean() > r2[0.0].mean() + 0.03, r2
    assert (r2[0.03] > r2[0.0]).mean() >= 0.6, r2


# --------------------------------------------------------------------------- bad inputs
def _drop_group(path, tissue):
    with h5py.File(path, "a") as f:
        del f[tissue]


def test_tissue_missing_from_one_file(layout, tmp_path):
    root = copy_layout(layout[0], tmp_path / "l")
    _drop_group(root / "velo.hdf5", "tissue2")
    out = tmp_path / "lasso.csv"
    proc = run_script("mtl_lasso.py", "--layout", root, "--tissue", "tissue2", "--min-cells", 10, "--output", out)
    assert_clean_failure(proc, mentions="velo.hdf5", outputs=[out])
    assert "has no tissue group 'tissue2'" in proc.stderr
    (root / "tf_activity/sum_tf/tissue1.csv").unlink()
    proc = run_script("mtl_lasso.py", "--layout", root, "--tissue", "tissue1", "--min-cells", 10, "--output", out)
    assert_clean_failure(proc, mentions="sum_tf", outputs=[out])


def test_genes_absent_from_activity_matrix(layout, tmp_path):
    root = copy_layout(layout[0], tmp_path / "l")
    cl = layout[1]
    gene = pd.read_csv(cl, sep="\t").query("cluster == 0")["gene_ensembl"].iloc[0]
    sym = "Gene" + str(int(gene[-5:]))
    for kind in ("mean_tf", "sum_tf"):
        p = root / "tf_activity" / kind / "tissue1.csv"
        pd.read_csv(p, index_col=0).drop(columns=[sym]).to_csv(p)
    out, w = tmp_path / "s.tsv", tmp_path / "s.npz"
    proc = run_script("mtl_train_shard.py", "--layout", root, "--tissue", "tissue1", "--clusters", cl,
                      "--cluster", 0, "--rep", 0, "--epochs", 1, "--output", out, "--weights", w)
    assert_clean_failure(proc, mentions="mean_tf", outputs=[out, w])
    assert "absent from the activity matrix" in proc.stderr


def test_cluster_with_no_genes(layout, tmp_path):
    root, cl = layout
    out, w = tmp_path / "s.tsv", tmp_path / "s.npz"
    proc = run_script("mtl_train_shard.py", "--layout", root, "--tissue", "tissue1", "--clusters", cl,
                      "--cluster", 7, "--rep", 0, "--epochs", 1, "--output", out, "--weights", w)
    assert_clean_failure(proc, mentions="clusters.tsv", outputs=[out, w])
    assert "cluster 7 has no genes" in proc.stderr
    genes = tmp_path / "genes.tsv"
    pd.DataFrame({"gene_ensembl": ["ENSSIMG00001", "ENSSIMG00002"]}).to_csv(genes, sep="\t", index=False)
    out = tmp_path / "clusters.tsv"
    proc = run_script("mtl_gene_clusters.py", "--layout", root, "--tissue", "tissue1", "--genes", genes,
                      "--n-clusters", 3, "--output", out)
    assert_clean_failure(proc, mentions="genes.tsv", outputs=[out])


def test_all_nan_velocity(layout, tmp_path):
    root = copy_layout(layout[0], tmp_path / "l")
    with h5py.File(root / "velo.hdf5", "a") as f:
        f["tissue1"]["velo"][...] = np.nan
    out = tmp_path / "lasso.csv"
    proc = run_script("mtl_lasso.py", "--layout", root, "--tissue", "tissue1", "--min-cells", 10, "--output", out)
    assert_clean_failure(proc, mentions="velo.hdf5", outputs=[out])
    assert "NaN" in proc.stderr
    # one gene entirely missing: the shard that holds it says so
    root2 = copy_layout(layout[0], tmp_path / "l2")
    gene = pd.read_csv(layout[1], sep="\t").query("cluster == 1")["gene_ensembl"].iloc[0]
    with h5py.File(root2 / "velo.hdf5", "a") as f:
        names = [x.decode() for x in f["tissue1"]["ensembl"][()]]
        f["tissue1"]["velo"][:, names.index(gene)] = np.nan
    o, w = tmp_path / "s.tsv", tmp_path / "s.npz"
    proc = run_script("mtl_train_shard.py", "--layout", root2, "--tissue", "tissue1", "--clusters", layout[1],
                      "--cluster", 1, "--rep", 0, "--epochs", 1, "--output", o, "--weights", w)
    assert_clean_failure(proc, mentions="velo.hdf5", outputs=[o, w])


def test_reader_errors_in_process(layout, tmp_path):
    root = copy_layout(layout[0], tmp_path / "l")
    with pytest.raises(InputError, match="has no tissue group 'nope'"):
        L.load_tissue(root, "nope")
    pd.DataFrame({"x": ["a"]}).to_csv(root / "tf_list.csv")
    with pytest.raises(InputError, match="Ensembl ID"):
        L.load_tissue(root, "tissue1")


# --------------------------------------------------------------------------- checkpoint / resume
def _shard_cmd(root, cl, out, ckpt, epochs):
    return [sys.executable, str(SCRIPTS / "mtl_train_shard.py"), "--layout", str(root), "--tissue", "tissue1",
            "--clusters", str(cl), "--cluster", "0", "--rep", "1", "--epochs", str(epochs), "--batch-size", "8",
            "--lam", "0.01", "--checkpoint-dir", str(ckpt), "--output", str(out), "--weights", str(out) + ".npz"]


@pytest.mark.slow
def test_checkpoint_resume_after_kill_is_byte_identical(layout, tmp_path):
    root, cl = layout
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    epochs = 30
    ref = tmp_path / "ref.tsv"
    p = subprocess.run(_shard_cmd(root, cl, ref, tmp_path / "ck_ref", epochs), capture_output=True, text=True,
                       env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert not (tmp_path / "ck_ref").exists()          # checkpoint removed once the outputs exist
    out, ck = tmp_path / "run.tsv", tmp_path / "ck"
    proc = subprocess.Popen(_shard_cmd(root, cl, out, ck, epochs), stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (ck / "state.npz").exists():
            with np.load(ck / "state.npz") as z:
                if int(z["epoch"]) >= 3:
                    break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    with np.load(ck / "state.npz") as z:
        stopped = int(z["epoch"])
    assert 3 <= stopped < epochs
    p2 = subprocess.run(_shard_cmd(root, cl, out, ck, epochs), capture_output=True, text=True, env=env, timeout=300)
    assert p2.returncode == 0, p2.stderr[-2000:]
    assert "resuming from epoch" in p2.stderr
    assert sha(out) == sha(ref)
    assert sha(str(out) + ".npz") == sha(str(ref) + ".npz")


# --------------------------------------------------------------------------- real-data inputs
def test_steady_state_velocity_recovers_gamma():
    from scfactor.models.mtl_velocity import steady_state_velocity
    rng = np.random.default_rng(0)
    s = rng.poisson(rng.gamma(2.0, 5.0, size=(400, 6)))
    gamma = np.array([0.2, 0.5, 1.0, 2.0, 0.3, 0.8])
    u = rng.poisson(s * gamma)
    velo, g, keep = steady_state_velocity(s, u, min_shared_counts=5, n_neighbors=5, n_pcs=3)
    assert keep.all() and velo.shape == (400, 6)
    # per-layer size normalisation rescales gamma; its ordering across genes is what must survive
    assert (np.argsort(g) == np.argsort(gamma)).all(), g
    assert np.isnan(velo[(s + u) == 0]).all() and not np.isnan(velo[(s + u) > 0]).any()


def test_prior_activity_tables():
    from scfactor.models.mtl_velocity import mouse_tf_symbols, prior_activity
    prior = pd.DataFrame({"tf": ["Sox9", "Sox9", "Pax6", "Foo"], "confidence": ["A", "C", "B", "A"],
                          "target": ["G1", "G2", "G1", "G1"], "mor": [1.0, -1.0, 1.0, 1.0]})
    orth = pd.DataFrame({0: ["SOX9", "PAX6", "XYZ"], 1: ["Sox9", "Pax6", None]})
    tfs = mouse_tf_symbols(["SOX9", "PAX6"], orth)
    assert tfs == {"Sox9", "Pax6"}
    mean, summ = prior_activity(prior, tfs, ["G1", "G2", "G3"], pd.Series({"Sox9": 10.0, "Pax6": 4.0}))
    assert list(mean.index) == ["Pax6", "Sox9"] and list(mean.columns) == ["G1", "G2", "G3"]
    assert mean.loc["Sox9", "G2"] == -0.5 and mean.loc["Pax6", "G1"] == 0.75 and mean["G3"].eq(0).all()
    assert summ.loc["Sox9", "G1"] == 10.0 and summ.loc["Pax6", "G1"] == 3.0
