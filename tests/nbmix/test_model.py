"""NB-mixture clustering (seed 004): model, M step, E step, simulator, metrics, scripts, workflow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.optimize as so
import scipy.sparse as sp
import scipy.stats as st
import torch

from conftest import assert_clean_failure, run_script, snakemake
from scfactor.core import metrics
from scfactor.models import nbmix
from scfactor.models.nbmix_simulate import simulate, simulate_anndata

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sim():
    x, z, lm, lr = simulate(100, 500, 4, seed=1)
    return x, z.argmax(1)


def test_simulator_is_deterministic_and_stores_truth():
    a = simulate_anndata(30, 40, 3, seed=5)
    b = simulate_anndata(30, 40, 3, seed=5)
    assert (a.X != b.X).nnz == 0
    assert a.varm["log_mean_true"].shape == (40, 3)
    assert ((a.varm["log_mean_true"] >= -12) & (a.varm["log_mean_true"] <= -6)).all()
    assert ((a.varm["log_inv_disp_true"] >= 0) & (a.varm["log_inv_disp_true"] <= 4)).all()
    assert (a.obs["label"].astype(str).to_numpy() == np.array([f"c{c}" for c in a.obsm["z_true"].argmax(1)])).all()
    assert (simulate_anndata(30, 40, 3, seed=6).X != a.X).nnz > 0


def test_component_loglik_matches_scipy():
    x, z, _, _ = simulate(20, 30, 2, seed=3)
    rng = np.random.default_rng(0)
    lm = rng.uniform(-7, -3, size=(2, 30))
    lr = rng.uniform(-1, 3, size=(2, 30))
    data = nbmix.CountData(sp.csr_matrix(x), chunk_elems=50)  # several chunks
    got = nbmix.component_loglik(data, torch.tensor(lm), torch.tensor(lr)).numpy()
    s = x.sum(1)
    r = np.exp(lr)
    ref = np.stack([st.nbinom(n=r[k], p=r[k] / (r[k] + s[:, None] * np.exp(lm[k]))).logpmf(x).sum(1)
                    for k in range(2)], axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_gradient_and_hessian_match_autograd():
    x, z, _, _ = simulate(40, 25, 2, seed=2)
    data = nbmix.CountData(x, chunk_elems=200)
    w = torch.tensor(np.random.default_rng(1).dirichlet([1, 1], size=40))
    a0 = torch.tensor(np.random.default_rng(2).uniform(-8, -4, size=(2, 25)))
    b0 = torch.tensor(np.random.default_rng(3).uniform(-1, 2, size=(2, 25)))
    pairs = nbmix.Pairs(data, w)
    ga, gb, haa, hab, hbb = nbmix._grad_hess(pairs, a0, b0)
    a = a0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    q = nbmix._weighted_objective(pairs, a, b).sum()
    da, db = torch.autograd.grad(q, (a, b), create_graph=True)
    np.testing.assert_allclose(ga.numpy(), da.detach().numpy(), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(gb.numpy(), db.detach().numpy(), rtol=1e-8, atol=1e-8)
    daa = torch.autograd.grad(da.sum(), a, retain_graph=True)[0]
    dab = torch.autograd.grad(da.sum(), b, retain_graph=True)[0]
    dbb = torch.autograd.grad(db.sum(), b)[0]
    np.testing.assert_allclose(haa.numpy(), daa.numpy(), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(hab.numpy(), dab.numpy(), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(hbb.numpy(), dbb.numpy(), rtol=1e-7, atol=1e-8)


def test_m_step_matches_scipy_on_one_gene():
    rng = np.random.default_rng(4)
    n = 300
    s = rng.integers(500, 5000, size=n).astype(float)
    lam = rng.gamma(shape=2.0, scale=np.exp(-6) / 2.0, size=n)
    xg = rng.poisson(s * lam)
    # a second column so that s_i (the row sums) equals the intended size factors
    x = np.column_stack([xg, (s - xg).clip(min=0)]).astype(int)
    s = x.sum(1)
    w = rng.uniform(0.2, 1.0, size=n)
    data = nbmix.CountData(x)
    wt = torch.tensor(w[:, None])
    a, b = nbmix.moment_init(data, wt)
    a, b = nbmix.m_step(data, wt, a, b, steps=50)

    def nll(theta):
        m = s * np.exp(theta[0])
        r = np.exp(theta[1])
        return -(w * st.nbinom(n=r, p=r / (r + m)).logpmf(xg)).sum()

    ref = so.minimize(nll, x0=[np.log(xg.sum() / s.sum()), 0.0], method="Nelder-Mead",
                      options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 20000}).x
    np.testing.assert_allclose([float(a[0, 0]), float(b[0, 0])], ref, atol=1e-4)
    assert nll([float(a[0, 0]), float(b[0, 0])]) <= nll(ref) + 1e-6


def test_mixing_weights_change_e_step():
    x, z, lm, lr = simulate(10, 20, 2, seed=0)
    rng = np.random.default_rng(0)
    log_mean = np.log(x.sum(0) / x.sum() + 1e-3)[None, :] + rng.normal(0, 0.05, size=(2, 20))
    log_inv_disp = np.zeros((2, 20))
    r_even, _ = nbmix.predict_proba(x, log_mean, log_inv_disp, [0.5, 0.5])
    r_skew, _ = nbmix.predict_proba(x, log_mean, log_inv_disp, [0.9, 0.1])
    assert not np.allclose(r_even, r_skew)
    shift = np.log(r_skew[:, 0] / r_skew[:, 1]) - np.log(r_even[:, 0] / r_even[:, 1])
    np.testing.assert_allclose(shift, np.log(9.0), rtol=1e-8)


def test_recovers_planted_clusters(sim):
    x, truth = sim
    fit = nbmix.fit_em(x, 4, init="kmeans", seed=0, log_every=0)
    assert metrics.accuracy_hungarian(truth, fit.labels) == 1.0
    assert metrics.ari(truth, fit.labels) == 1.0
    xs, zs, _, _ = simulate(60, 150, 3, seed=1)
    fit = nbmix.fit_em(sp.csr_matrix(xs), 3, init="random", nrep=2, seed=0, log_every=0)
    assert metrics.accuracy_hungarian(zs.argmax(1), fit.labels) == 1.0


@pytest.mark.parametrize("init", ["random", "nmf", "leiden"])
def test_loglik_never_decreases(init):
    # sparse-ish data (lower means) so that the nonzero-only terms matter
    x, z, _, _ = simulate(60, 100, 3, s=2e3, seed=7)
    fit = nbmix.fit_em(x, 3, init=init, seed=1, log_every=0, max_iters=12, tol=0)
    tr = np.asarray(fit.trace)
    assert len(tr) >= 5
    assert (np.diff(tr) >= -1e-9 * np.abs(tr[:-1])).all(), np.diff(tr)
    np.testing.assert_allclose(fit.resp.sum(1), 1.0)


def test_restarts_keep_best_loglik():
    x, _, _, _ = simulate(50, 80, 3, seed=9)
    fit = nbmix.fit_em(x, 3, init="random", nrep=3, seed=3, log_every=0, max_iters=8)
    assert fit.loglik == max(r["loglik"] for r in fit.restarts)
    assert len(fit.restarts) == 3


def test_amortized_assigns_new_cells():
    x, z, _, _ = simulate(160, 200, 3, seed=11)
    truth = z.argmax(1)
    model, fit = nbmix.fit_amortized(x[:120], 3, epochs=8, batch_size=32, lr=1e-2, seed=0, init_subsample=60,
                                     em_kwargs={"log_every": 0})
    assert metrics.ari(truth[:120], fit.labels) > 0.95
    new = model.assign(sp.csr_matrix(x[120:])).argmax(1)
    assert metrics.ari(truth[120:], new) > 0.95
    assert len(fit.trace) == 8


def test_metrics():
    truth = np.array(list("aaabbbccc"))
    pred = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])  # b and c merged
    assert metrics.accuracy_majority(truth, pred) == pytest.approx(6 / 9)
    assert metrics.accuracy_hungarian(truth, pred) == pytest.approx(6 / 9)
    pred2 = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2])
    assert metrics.accuracy_majority(truth, pred2) == pytest.approx(8 / 9)
    assert metrics.accuracy_hungarian(truth, pred2) == pytest.approx(8 / 9)
    pred3 = np.array([0, 1, 2, 3, 3, 3, 4, 4, 4])  # over-split: majority is generous, 1-to-1 is not
    assert metrics.accuracy_majority(truth, pred3) == 1.0
    assert metrics.accuracy_hungarian(truth, pred3) == pytest.approx(7 / 9)
    resp = np.eye(3)[[0, 0, 0, 1, 1, 1, 2, 2, 2]] * 0.98 + 0.01 / 1.5
    resp /= resp.sum(1, keepdims=True)
    assert metrics.log_loss(truth, resp) == pytest.approx(-np.log(resp.max(1)).mean())
    r, names = metrics.label_correlation(truth, np.eye(3)[[0, 0, 0, 1, 1, 1, 2, 2, 2]])
    np.testing.assert_allclose(np.diag(r), 1.0)


# --------------------------------------------------------------------------- scripts
def _write(tmp_path, x, name="in.h5ad", labels=None):
    import anndata as ad
    a = ad.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame(index=[f"c{i}" for i in range(x.shape[0])]),
                   var=pd.DataFrame(index=[f"g{j}" for j in range(x.shape[1])]))
    a.layers["counts"] = a.X.copy()
    if labels is not None:
        a.obs["label"] = pd.Categorical(labels)
    path = tmp_path / name
    a.write_h5ad(path)
    return path


def _fit_args(inp, out, k=2, extra=()):
    return ["--input", inp, "--k", k, "--output", out / "o.h5ad", "--metrics", out / "m.tsv",
            "--trace", out / "t.tsv", "--device", "cpu", *extra]


def _outputs(out):
    return [out / "o.h5ad", out / "m.tsv", out / "t.tsv"]


def test_script_rejects_non_integer_counts(tmp_path):
    x = np.random.default_rng(0).poisson(3, size=(20, 10)).astype(float)
    x[2, 3] = 1.5
    inp = _write(tmp_path, x)
    proc = run_script("nbmix_fit.py", *_fit_args(inp, tmp_path))
    assert_clean_failure(proc, mentions=str(inp), outputs=_outputs(tmp_path))
    assert "non-integer" in proc.stderr


def test_script_rejects_k_larger_than_cells(tmp_path):
    x = np.random.default_rng(0).poisson(3, size=(5, 10))
    inp = _write(tmp_path, x)
    proc = run_script("nbmix_fit.py", *_fit_args(inp, tmp_path, k=6))
    assert_clean_failure(proc, mentions=str(inp), outputs=_outputs(tmp_path))
    assert "k=6" in proc.stderr


def test_script_rejects_cell_with_zero_total(tmp_path):
    x = np.random.default_rng(0).poisson(3, size=(20, 10))
    x[4] = 0
    inp = _write(tmp_path, x)
    proc = run_script("nbmix_fit.py", *_fit_args(inp, tmp_path))
    assert_clean_failure(proc, mentions=str(inp), outputs=_outputs(tmp_path))
    assert "zero total count" in proc.stderr


def test_script_output_content_and_determinism(tmp_path):
    a = simulate_anndata(40, 60, 3, seed=2)
    inp = tmp_path / "sim.h5ad"
    a.write_h5ad(inp)
    outs = []
    for rep in range(2):
        out = tmp_path / f"run{rep}"
        proc = run_script("nbmix_fit.py", *_fit_args(inp, out, k=3, extra=["--nrep", "2", "--seed", "4"]))
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(out)
    assert (outs[0] / "m.tsv").read_bytes() == (outs[1] / "m.tsv").read_bytes()
    assert (outs[0] / "t.tsv").read_bytes() == (outs[1] / "t.tsv").read_bytes()
    m = pd.read_csv(outs[0] / "m.tsv", sep="\t")
    assert m.loc[0, "accuracy_hungarian"] == 1.0 and m.loc[0, "label_kind"] == "ground truth"
    import anndata as ad
    o = ad.read_h5ad(outs[0] / "o.h5ad")
    assert o.obsm["nbmix_resp"].shape == (40, 3)
    assert o.varm["nbmix_log_mean"].shape == (60, 3)
    assert len(o.uns["nbmix"]["pi"]) == 3
    t = pd.read_csv(outs[0] / "t.tsv", sep="\t")
    assert (np.diff(t["loglik"]) >= -1e-9 * t["loglik"].abs().max()).all()


# --------------------------------------------------------------------------- workflow
@pytest.mark.workflow
def test_workflow_tiny(tiny_workdir):
    targets = ["results/nbmix/summary.tsv", "results/figures/nbmix/seed004_tiny.umap.png",
               "results/figures/nbmix/pbmc3k.poisson_nb.png"]
    snakemake(tiny_workdir, "-c", "2", *targets, timeout=900)
    summ = pd.read_csv(tiny_workdir / "results/nbmix/summary.tsv", sep="\t")
    sim = summ[(summ.dataset == "seed004_tiny") & (summ.method == "nbmix_em")].iloc[0]
    assert sim.accuracy_hungarian == 1.0 and sim.ari == 1.0
    ref = summ[(summ.dataset == "pbmc3k") & (summ.method == "nbmix_em")].iloc[0]
    assert "not ground truth" in ref.label_kind
    assert np.isnan(ref.accuracy_majority) and 0 < ref.nmi <= 1
    assert set(summ.method) == {"nbmix_em", "leiden"}
    for f in ["seed004_tiny.umap.pdf", "pbmc3k.correlation.png", "summary.png"]:
        assert (tiny_workdir / "results/figures/nbmix" / f).stat().st_size > 5000
    import anndata as ad
    lei = ad.read_h5ad(tiny_workdir / "results/nbmix/pbmc3k/leiden.h5ad")
    assert lei.obsm["X_umap"].shape == (lei.n_obs, 2) and "leiden" in lei.obs
