"""Tests of the integrate step: NNLS solvers, iNMF, quantile normalisation, metrics, simulator (c),
the integrate script (counts, neumf and online paths, bad inputs) and the tiny workflow."""

from __future__ import annotations

import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment, nnls

from conftest import REPO, assert_clean_failure, run_script, snakemake

sys.path.insert(0, str(REPO / "workflow"))

from scfactor.core import metrics  # noqa: E402
from scfactor.models import inmf  # noqa: E402
from scfactor.core.nnls import hals_sweep, nnls_bpp  # noqa: E402
from scfactor.quantile_norm import quantile_normalize, refine_clusters  # noqa: E402
from scfactor.simulate_batches import SimSettings, write_simulation  # noqa: E402

SIM = SimSettings(n_cells=(300, 200), n_genes=200, k_shared=5, k_specific=1, seed=3)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "sim.h5ad"
    write_simulation(SIM, path)
    return path


@pytest.fixture(scope="module")
def sim_scaled(sim):
    a = ad.read_h5ad(sim)
    b = a.obs["batch"].astype(str).to_numpy()
    return a, b, [inmf.liger_scale(a.X[b == name]) for name in ("b1", "b2")]


# ------------------------------------------------------------------ solvers
def test_bpp_matches_scipy_nnls_and_warm_start():
    rng = np.random.default_rng(0)
    a = rng.random((60, 8))
    bmat = rng.normal(size=(60, 40)) + a @ rng.random((8, 40))
    ata, atb = torch.tensor(a.T @ a), torch.tensor(a.T @ bmat)
    x = nnls_bpp(ata, atb).numpy()
    ref = np.stack([nnls(a, bmat[:, j])[0] for j in range(bmat.shape[1])], 1)
    assert np.abs(x - ref).max() < 1e-9
    assert (x == 0).any()  # the constraints are active somewhere, else the test is vacuous
    warm = nnls_bpp(ata, atb, passive=torch.rand(8, 40, generator=torch.Generator().manual_seed(1)) > 0.5)
    assert np.abs(warm.numpy() - ref).max() < 1e-9


def test_hals_sweeps_converge_to_nnls_and_are_monotone():
    rng = np.random.default_rng(1)
    a = rng.random((50, 6))
    bmat = a @ rng.random((6, 30)) + 0.1 * rng.normal(size=(50, 30))
    ata, atb = torch.tensor(a.T @ a), torch.tensor(a.T @ bmat)
    x = torch.ones(6, 30, dtype=torch.float64)
    obj = []
    for _ in range(200):
        hals_sweep(ata, atb, x, 1)
        obj.append(float(((torch.tensor(a) @ x - torch.tensor(bmat)) ** 2).sum()))
    assert all(b <= a_ + 1e-9 for a_, b in zip(obj, obj[1:]))
    ref = np.stack([nnls(a, bmat[:, j])[0] for j in range(30)], 1)
    assert np.abs(x.numpy() - ref).max() < 1e-4


# ------------------------------------------------------------------ iNMF
@pytest.mark.parametrize("solver", ["anls", "hals"])
def test_objective_decreases_monotonically(sim_scaled, solver):
    _, _, xs = sim_scaled
    r = inmf.fit_inmf(xs, k=6, lam=5.0, max_iters=15, thresh=0, solver=solver, seed=2)
    tr = np.asarray(r.trace)
    assert len(tr) == 16
    assert np.all(np.diff(tr) <= 1e-9 * tr[1:]), tr
    assert tr[-1] < 0.5 * tr[1]  # it actually optimises
    # the objective tracked from sufficient statistics equals the directly computed one
    assert r.objective == pytest.approx(inmf.inmf_objective(xs, r.W, r.V, r.H, 5.0), rel=1e-8)
    assert min(r.W.min(), min(v.min() for v in r.V), min(h.min() for h in r.H)) >= 0


def test_restarts_keep_best_and_are_deterministic(sim_scaled):
    _, _, xs = sim_scaled
    r1 = inmf.fit_inmf(xs, k=5, max_iters=5, nrep=3, seed=7)
    r2 = inmf.fit_inmf(xs, k=5, max_iters=5, nrep=3, seed=7)
    assert r1.objective == min(r1.rep_objectives)
    assert r1.seed == 7 + r1.rep
    np.testing.assert_array_equal(r1.W, r2.W)


def test_recovers_planted_shared_factors(sim, sim_scaled):
    a, _, xs = sim_scaled
    r = inmf.fit_inmf(xs, k=SIM.k_shared + 2, lam=5.0, max_iters=30, seed=1)
    w_true = a.varm["W_true"].T
    c = np.corrcoef(np.vstack([w_true, r.W]))[:SIM.k_shared, SIM.k_shared:]
    rows, cols = linear_sum_assignment(-c)
    matched = c[rows, cols]
    assert matched.min() > 0.6 and matched.mean() > 0.7, matched
    # a random non-negative W does not match: the test can fail
    rnd = np.random.default_rng(0).uniform(0, 2, r.W.shape)
    c0 = np.corrcoef(np.vstack([w_true, rnd]))[:SIM.k_shared, SIM.k_shared:]
    assert c0[linear_sum_assignment(-c0)].mean() < 0.3


def test_quantile_normalisation_raises_alignment(sim_scaled):
    _, b, xs = sim_scaled
    r = inmf.fit_inmf(xs, k=6, max_iters=20, seed=1)
    h_norm, clusters, ref = quantile_normalize(r.H, min_cells=20, knn_k=20)
    assert ref == 0  # largest batch
    np.testing.assert_array_equal(h_norm[0], r.H[0])  # the reference is unchanged
    before = metrics.alignment_score(np.vstack(r.H), b)
    after = metrics.alignment_score(np.vstack(h_norm), b)
    assert after > before + 0.2, (before, after)


def test_refine_clusters_majority_vote():
    h = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    c = np.array([0, 1, 0, 1, 1, 0])
    np.testing.assert_array_equal(refine_clusters(h, c, 3), [0, 0, 0, 1, 1, 1])


def test_alignment_score_extremes():
    rng = np.random.default_rng(0)
    mixed = rng.normal(size=(400, 3))
    batch = np.repeat(["a", "b"], 200)
    sep = mixed + np.where(batch == "a", 0, 100)[:, None]
    assert metrics.alignment_score(mixed, batch) > 0.85
    assert metrics.alignment_score(sep, batch) == pytest.approx(0.0)
    ari, nmi, n = metrics.ari_nmi(np.array(["x", "y", None, "x"], dtype=object), np.array([1, 2, 2, 1]))
    assert (ari, nmi, n) == (1.0, 1.0, 3)


def test_online_inmf_close_to_batch(sim):
    from scfactor.integration import BackedSource
    src = BackedSource(sim, layer="X")
    src.fit_scale(100)
    n_genes = len(src.genes)
    res = inmf.fit_online_inmf(lambda e: src.stream(64, 10 + e), src.n_cells, n_genes, k=6, epochs=6, seed=1)
    xs = [sp.vstack([src.read(i, 0, n)]).tocsr() for i, n in enumerate(src.n_cells)]
    src.close()
    assert [h.shape for h in res.H] == [(300, 6), (200, 6)]
    direct = inmf.inmf_objective(xs, res.W, res.V, res.H, 5.0)
    assert res.objective == pytest.approx(direct, rel=1e-8)
    batch = inmf.fit_inmf(xs, k=6, max_iters=30, seed=1)
    assert res.objective < 1.15 * batch.objective, (res.objective, batch.objective)


# ------------------------------------------------------------------ simulator
def test_simulator_deterministic_with_truth(tmp_path):
    s = SimSettings(n_cells=(50, 40), n_genes=60, k_shared=3, k_specific=1, seed=5, chunk=16)
    write_simulation(s, tmp_path / "a.h5ad")
    write_simulation(s, tmp_path / "b.h5ad")
    a, b = ad.read_h5ad(tmp_path / "a.h5ad"), ad.read_h5ad(tmp_path / "b.h5ad")
    assert (a.X != b.X).nnz == 0
    assert a.X.dtype == np.int32 and a.n_obs == 90 and a.n_vars == 60
    assert list(a.obs["batch"].cat.categories) == ["b1", "b2"]
    assert set(a.obs["label"]) <= {"g0", "g1", "g2"}
    assert a.varm["W_true"].shape == (60, 3) and a.obsm["H_true"].shape == (90, 3)
    assert a.varm["S_true_b2"].shape == (60, 1)
    s2 = SimSettings(n_cells=(50, 40), n_genes=60, k_shared=3, k_specific=1, seed=6, chunk=16)
    write_simulation(s2, tmp_path / "c.h5ad")
    assert (ad.read_h5ad(tmp_path / "c.h5ad").X != a.X).nnz > 0


# ------------------------------------------------------------------ script: neumf path + bad inputs
FAST = ["--k", "4", "--max-iters", "5", "--agreement-dims", "4", "--min-cells", "5", "--knn-k", "5",
        "--n-neighbors", "8", "--device", "cpu"]


def _neumf_files(tmp_path, sim, genes_b2=None, negative=False):
    a = ad.read_h5ad(sim)
    paths = []
    for name in ("b1", "b2"):
        sub = a[a.obs["batch"] == name]
        rng = np.random.default_rng(len(paths))
        dense = sub.X.toarray().astype(np.float32) + rng.random(sub.shape).astype(np.float32)
        if negative and name == "b2":
            dense[0, 0] = -1.0
        out = ad.AnnData(X=sp.csr_matrix(sub.X), obs=pd.DataFrame({"batch": name, "label": sub.obs["label"].to_numpy()},
                                                               index=sub.obs_names),
                         var=pd.DataFrame(index=sub.var_names))
        out.layers["neumf"] = dense
        if name == "b2" and genes_b2 is not None:
            out.var_names = genes_b2
        p = tmp_path / f"{name}.h5ad"
        out.write_h5ad(p)
        paths.append(p)
    return paths


def test_script_neumf_source(tmp_path, sim):
    paths = _neumf_files(tmp_path, sim)
    out, met = tmp_path / "out.h5ad", tmp_path / "m.tsv"
    proc = run_script("integrate.py", "--source", "neumf", "--input", *paths, *FAST,
                      "--output", out, "--metrics", met)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = ad.read_h5ad(out)
    assert a.obsm["X_inmf"].shape == (500, 4) and a.obsm["X_inmf_norm"].shape == (500, 4)
    assert a.obsm["X_umap"].shape == (500, 2)
    assert {"W", "V_b1", "V_b2"} <= set(a.varm) and a.varm["W"].shape == (200, 4)
    assert a.uns["inmf"]["source"] == "neumf"
    tr = np.asarray(a.uns["inmf"]["objective_trace"])
    assert np.all(np.diff(tr) <= 1e-9 * tr[1:])
    t = pd.read_csv(met, sep="\t").set_index(["metric", "batch"])
    assert t.loc[("n_labelled", "b1"), "value"] == 300 and t.loc[("n_labelled", "b2"), "value"] == 200
    assert t.loc[("alignment", "all"), "value"] > t.loc[("alignment_raw", "all"), "value"]
    assert 0 < t.loc[("ari", "all"), "value"] <= 1


@pytest.mark.parametrize("case", ["one_batch", "no_shared_genes", "negative", "k_too_large"])
def test_bad_inputs_fail_cleanly(tmp_path, sim, case):
    out, met = tmp_path / "out.h5ad", tmp_path / "m.tsv"
    if case == "one_batch":
        args, mention = ["--input", sim, "--layer", "X", "--batches", "b1"], str(sim)
    elif case == "no_shared_genes":
        paths = _neumf_files(tmp_path, sim, genes_b2=[f"other{i}" for i in range(200)])
        args, mention = ["--source", "neumf", "--input", *paths], "shares no gene"
    elif case == "negative":
        paths = _neumf_files(tmp_path, sim, negative=True)
        args, mention = ["--source", "neumf", "--input", *paths], "negative"
    else:  # 200 genes, k = 250 (argparse keeps the last --k)
        args, mention = ["--input", sim, "--layer", "X", "--genes", "all"], "not smaller than the number of genes"
    extra = ["--k", "250"] if case == "k_too_large" else []
    proc = run_script("integrate.py", *args, *FAST, *extra, "--output", out, "--metrics", met)
    assert_clean_failure(proc, mentions=mention, outputs=[out, met])


# ------------------------------------------------------------------ workflow (tiny config)
def test_workflow_tiny_simulated(tiny_workdir):
    targets = [f"results/figures/integrate/sim_batches.{k}.png" for k in ("umap", "metrics")]
    snakemake(tiny_workdir, "--cores", "2", *targets)
    for t in targets:
        assert (tiny_workdir / t).stat().st_size > 10_000
    a = ad.read_h5ad(tiny_workdir / "results/integrate/sim_batches/counts.h5ad")
    assert list(a.obs["batch"].cat.categories) == ["b1", "b2"]
    assert a.n_obs == 280 and a.obsm["X_inmf"].shape[1] == 6
    assert a.obs["leiden"].nunique() >= 2
    t = pd.read_csv(tiny_workdir / "results/integrate/sim_batches/counts.metrics.tsv", sep="\t")
    t = t.set_index(["metric", "batch"])["value"]
    assert t[("alignment", "all")] > t[("alignment_raw", "all")]
    assert t[("n_labelled", "b1")] == 160 and t[("n_labelled", "b2")] == 120
    assert t[("ari", "all")] > 0.1


def test_script_online_mode(tmp_path, sim):
    out, met = tmp_path / "on.h5ad", tmp_path / "on.tsv"
    proc = run_script("integrate.py", "--input", sim, "--layer", "X", "--genes", "all", "--mode", "online",
                      "--online-minibatch", "128", "--online-epochs", "3", *FAST, "--output", out, "--metrics", met)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "online epoch 3/3" in proc.stderr
    a = ad.read_h5ad(out)
    assert a.uns["inmf"]["mode"] == "online" and a.obsm["X_inmf"].shape == (500, 4)
    t = pd.read_csv(met, sep="\t").set_index(["metric", "batch"])["value"]
    assert t[("alignment", "all")] > t[("alignment_raw", "all")]
