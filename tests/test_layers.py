"""Multilayer NMF (seed 002) and its block simulator: unit tests, bad inputs, tiny workflow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SCRIPTS, assert_clean_failure, run_script, snakemake
from scfactor.core import io
from scfactor.models import layered_nmf as lnmf
from scfactor.simulate_blocks import generate_data, to_anndata, write_nnmf_h5


def run_inprocess(name, *args):
    """Run workflow/scripts/<name>'s main() in this process (no import cost); a CompletedProcess look-alike."""
    import contextlib
    import importlib.util
    import io as _io
    import types

    from scfactor.core import cli
    spec = importlib.util.spec_from_file_location(f"_script_{name[:-3]}", SCRIPTS / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    err = _io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = cli.run(mod.main, [str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = exc.code
    return types.SimpleNamespace(returncode=code, stderr=err.getvalue(), stdout="")


# --------------------------------------------------------------------------- simulator
def test_simulator_deterministic_and_seeded():
    a = generate_data(60, 3, 90, seed=7)
    b = generate_data(60, 3, 90, seed=7)
    c = generate_data(60, 3, 90, seed=8)
    for f in ("x", "theta", "beta", "cell_block", "gene_block"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.x, c.x)


def test_simulator_plants_blocks():
    sim = generate_data(300, 3, 600, seed=1)
    assert sim.x.shape == (300, 600) and sim.x.dtype.kind == "i" and (sim.x >= 0).all()
    np.testing.assert_array_equal(np.bincount(sim.cell_block), [100, 100, 100])
    np.testing.assert_array_equal(np.bincount(sim.gene_block), [200, 200, 200])
    for k in range(3):
        own = sim.theta[sim.cell_block == k, k].mean()
        other = sim.theta[sim.cell_block != k, k].mean()
        assert own > 3 * other  # Gamma(3, scale 2) vs Gamma(1, 1): means 6 vs 1
        assert sim.beta[sim.gene_block == k, k].mean() > 5 * sim.beta[sim.gene_block != k, k].mean()
    # the counts carry the blocks: block-k cells express block-k genes most
    means = np.array([[sim.x[np.ix_(sim.cell_block == i, sim.gene_block == j)].mean() for j in range(3)]
                      for i in range(3)])
    assert (means.argmax(axis=1) == np.arange(3)).all()


def test_simulator_noise_genes_and_dense_mode():
    sim = generate_data(40, 4, 100, seed=0, noise_prop=0.2)
    assert (sim.gene_block[80:] == -1).all() and (sim.gene_block[:80] >= 0).all()
    dense = generate_data(40, 4, 100, mode="dense", seed=0)
    assert (dense.cell_block == -1).all()
    with pytest.raises(ValueError, match="mode"):
        generate_data(10, 2, 10, mode="blocks")


def test_simulate_script_and_nnmf_h5_round_trip_through_preprocess(tmp_path):
    out, h5 = tmp_path / "sim.h5ad", tmp_path / "sim.h5"
    proc = run_script("simulate_blocks.py", "--n-cells", 50, "--n-genes", 80, "--n-factors", 5,
                      "--seed", 3, "--output", out, "--nnmf-h5", h5)
    assert proc.returncode == 0, proc.stderr
    sim = io.read_h5ad(out)
    truth = generate_data(50, 5, 80, seed=3)
    np.testing.assert_array_equal(sim.X.toarray(), truth.x)
    np.testing.assert_allclose(sim.obsm["theta_true"], truth.theta)
    assert list(sim.obs["block"][:2]) == ["k0", "k0"] and sim.var_names[0] == "c0"
    assert io.detect_format(h5) == "nnmf_h5"
    back = io.read_counts(h5)
    np.testing.assert_array_equal(back.X.toarray(), truth.x)
    assert list(back.obs_names) == [str(i) for i in range(50)]
    pp = tmp_path / "pp.h5ad"
    proc = run_inprocess("preprocess.py", "--input", h5, "--output", pp, "--qc-table", tmp_path / "qc.tsv",
                      "--qc-figure", tmp_path / "qc.png", "--n-hvg", 40)
    assert proc.returncode == 0, proc.stderr
    pre = io.read_h5ad(pp)
    keep = np.asarray(truth.x.sum(axis=0) > 0)
    np.testing.assert_array_equal(pre.layers["counts"].toarray(), truth.x[:, keep])


def test_simulate_script_bad_option_fails_cleanly(tmp_path):
    out = tmp_path / "sim.h5ad"
    proc = run_inprocess("simulate_blocks.py", "--n-cells", 5, "--n-factors", 10, "--output", out,
                      "--nnmf-h5", tmp_path / "sim.h5")
    assert_clean_failure(proc, mentions="K <= min(N, M)", outputs=[out, tmp_path / "sim.h5"])


# --------------------------------------------------------------------------- model internals
def test_support_solve_matches_scipy_nnls():
    from scipy.optimize import nnls
    g = torch.Generator().manual_seed(0)
    a = torch.rand(40, 5, generator=g, dtype=torch.float64)
    y = torch.rand(40, 30, generator=g, dtype=torch.float64) - 0.3
    gram, rhs = a.T @ a, a.T @ y
    s0 = lnmf._hals_nnls(gram, rhs, torch.zeros(5, 30, dtype=torch.float64), 500)
    s = lnmf._solve_on_support(gram, rhs, s0 > 0)
    ref = np.stack([nnls(a.numpy(), y[:, j].numpy())[0] for j in range(30)], axis=1)
    np.testing.assert_allclose(s.numpy(), ref, atol=1e-6)


def test_support_solve_gradient_is_exact():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(12, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(12, 7, generator=g, dtype=torch.float64)
    with torch.no_grad():
        support = lnmf._hals_nnls(a.T @ a, a.T @ y, torch.zeros(3, 7, dtype=torch.float64), 300) > 0

    def f(a_):
        return lnmf._solve_on_support(a_.T @ a_, a_.T @ y, support)
    assert torch.autograd.gradcheck(f, (a,), eps=1e-6, atol=1e-5)


@pytest.fixture(scope="module")
def small_sim():
    return generate_data(200, 4, 300, seed=5)


@pytest.mark.parametrize("solver,lr", [("poisson", 0.1), ("nnls", 0.2)])
def test_loss_decreases(small_sim, solver, lr):
    res = lnmf.fit_layered_nmf(small_sim.x, layers=[6, 4], solver=solver, epochs=40, lr=lr, seed=0)
    assert res.loss.shape == (40,) and np.isfinite(res.loss).all()
    assert res.loss[-1] < 0.5 * res.loss[0]
    assert res.loss[-10:].mean() < res.loss[:10].mean()
    assert [t.shape for t in res.thetas] == [(200, 6), (6, 4)]
    assert [b.shape for b in res.betas] == [(300, 6), (300, 4)]
    assert all((t >= 0).all() for t in res.thetas) and all((b >= 0).all() for b in res.betas)


def test_recovers_planted_blocks(small_sim):
    res = lnmf.fit_layered_nmf(small_sim.x, layers=[6, 4], solver="poisson", epochs=100, lr=0.1, seed=0)
    m = lnmf.recovery_metrics(res, small_sim.theta, small_sim.beta, small_sim.cell_block)
    assert m["beta_match_corr_l2"] > 0.95, m
    assert m["theta_match_corr_l2"] > 0.9, m
    assert m["ari_l2"] > 0.8 * m["ari_truth"], m
    # a random factorisation does not score like that
    rng = np.random.default_rng(0)
    shuffled = lnmf.matched_correlation(rng.random((300, 4)), small_sim.beta)[0]
    assert shuffled < 0.5


def test_fit_is_deterministic(small_sim):
    a = lnmf.fit_layered_nmf(small_sim.x, layers=[5, 3], epochs=15, seed=4)
    b = lnmf.fit_layered_nmf(small_sim.x, layers=[5, 3], epochs=15, seed=4)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.thetas[0], b.thetas[0])


def test_bad_model_options():
    x = np.ones((10, 12))
    with pytest.raises(ValueError, match="increase"):
        lnmf.fit_layered_nmf(x, layers=[3, 5], epochs=2)
    with pytest.raises(ValueError, match="wider"):
        lnmf.fit_layered_nmf(x, layers=[11], epochs=2)
    with pytest.raises(ValueError, match="solver"):
        lnmf.fit_layered_nmf(x, solver="lsq", epochs=2)


# --------------------------------------------------------------------------- scripts
@pytest.fixture(scope="module")
def preprocessed_sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("layers")
    adata = to_anndata(generate_data(120, 3, 150, seed=2))
    adata.layers["counts"] = adata.X.copy()
    path = d / "sim.h5ad"
    io.write_h5ad(adata, path)
    return path


def _outputs(d):
    return [d / "fit.h5ad", d / "loss.tsv", d / "metrics.tsv"]


def _fit(inp, d, *extra, runner=None):
    out, loss, metrics = _outputs(d)
    return (runner or run_inprocess)("layers.py", "--input", inp, "--output", out, "--loss-table", loss,
                                     "--metrics", metrics, "--device", "cpu", *extra)


def test_layers_script_outputs_and_determinism(preprocessed_sim, tmp_path):
    args = ("--layers", 5, 3, "--epochs", 30, "--lr", 0.1, "--seed", 1)
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        proc = _fit(preprocessed_sim, d, *args)
        assert proc.returncode == 0, proc.stderr
    for name in ("loss.tsv", "metrics.tsv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    fit = io.read_h5ad(a / "fit.h5ad")
    assert fit.uns["theta_l1"].shape == (120, 5) and fit.uns["theta_l2"].shape == (5, 3)
    assert fit.varm["beta_l1"].shape == (150, 5) and fit.varm["beta_l2"].shape == (150, 3)
    assert fit.obsm["X_layers"].shape == (120, 3) and len(fit.uns["layers"]["loss"]) == 30
    loss = pd.read_csv(a / "loss.tsv", sep="\t")
    assert list(loss["epoch"]) == list(range(1, 31)) and loss["loss"].iloc[-1] < loss["loss"].iloc[0]
    m = pd.read_csv(a / "metrics.tsv", sep="\t").set_index("metric")["value"]
    assert {"ari_l2", "beta_match_corr_l2", "ari_truth", "final_loss"} <= set(m.index)
    assert m["beta_match_corr_l2"] > 0.8


@pytest.mark.parametrize("extra,mentions", [
    (("--layer", "spliced"), "has no layer 'spliced'"),
    (("--layers", 200), "wider than"),
    (("--layers", 3, 5), "must not increase"),
    (("--genes", "liger"), "liger_selected"),
])
def test_layers_script_bad_inputs(preprocessed_sim, tmp_path, extra, mentions):
    proc = _fit(preprocessed_sim, tmp_path, "--epochs", 2, *extra)
    assert_clean_failure(proc, mentions=mentions, outputs=_outputs(tmp_path))


def test_layers_script_missing_and_negative_input(tmp_path):
    missing = tmp_path / "nope.h5ad"
    assert_clean_failure(_fit(missing, tmp_path), mentions="nope.h5ad", outputs=_outputs(tmp_path))
    adata = to_anndata(generate_data(30, 2, 40, seed=0))
    x = adata.X.toarray().astype(np.float32)
    x[0, 0] = -1
    import scipy.sparse as sp
    adata.layers["counts"] = sp.csr_matrix(x)
    bad = tmp_path / "neg.h5ad"
    io.write_h5ad(adata, bad)
    assert_clean_failure(_fit(bad, tmp_path), mentions="negative", outputs=_outputs(tmp_path))


def test_layers_script_absent_cuda_fails_cleanly(preprocessed_sim, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    out, loss, metrics = _outputs(tmp_path)
    proc = run_inprocess("layers.py", "--input", preprocessed_sim, "--output", out, "--loss-table", loss,
                      "--metrics", metrics, "--device", "cuda")
    assert_clean_failure(proc, mentions="CUDA", outputs=_outputs(tmp_path))


def test_figure_scripts(preprocessed_sim, tmp_path):
    assert _fit(preprocessed_sim, tmp_path, "--layers", 4, 3, "--epochs", 5).returncode == 0
    fit = tmp_path / "fit.h5ad"
    for script, level in (("layers_theta_clustermap.py", 1), ("layers_gene_loading.py", 2)):
        png, pdf = tmp_path / f"{script}.png", tmp_path / f"{script}.pdf"
        proc = run_inprocess(script, "--input", fit, "--level", level, "--output", png, pdf)
        assert proc.returncode == 0, proc.stderr
        assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"
    png = tmp_path / "l3.png"
    proc = run_inprocess("layers_theta_clustermap.py", "--input", fit, "--level", 3, "--output", png)
    assert_clean_failure(proc, mentions="theta_l3", outputs=[png])


def test_top_genes_union():
    from scfactor.layers_plots import top_genes
    beta = np.array([[5, 0], [4, 1], [0, 9], [1, 8]], float)
    assert top_genes(beta, ["a", "b", "c", "d"], 2) == ["a", "b", "c", "d"]
    assert top_genes(beta, ["a", "b", "c", "d"], 1) == ["a", "c"]


# --------------------------------------------------------------------------- workflow
@pytest.mark.workflow
def test_workflow_tiny(tiny_workdir):
    targets = ["results/layers/sim_blocks.metrics.tsv", "results/figures/layers/sim_blocks_theta_l1.png",
               "results/figures/layers/sim_blocks_beta_l2.png"]
    snakemake(tiny_workdir, "--cores", "2", *targets)
    m = pd.read_csv(tiny_workdir / "results/layers/sim_blocks.metrics.tsv", sep="\t").set_index("metric")["value"]
    assert m["n_cells"] == 120 and m["n_genes"] == 200
    assert m["beta_match_corr_l2"] > 0.8, m
    fit = io.read_h5ad(tiny_workdir / "results/layers/sim_blocks.h5ad")
    assert fit.uns["theta_l1"].shape == (120, 6) and fit.varm["beta_l2"].shape == (200, 4)
    for t in targets[1:]:
        assert (tiny_workdir / t).read_bytes()[:4] == b"\x89PNG"
        assert (tiny_workdir / t).with_suffix(".pdf").exists()
    assert (tiny_workdir / "results/simulate/blocks.h5").exists()


@pytest.mark.workflow
def test_workflow_bad_config_fails_before_jobs(tiny_workdir):
    import yaml
    cfg = yaml.safe_load((tiny_workdir / "config.yaml").read_text())
    cfg["layers"]["datasets"] = ["nope"]
    (tiny_workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tiny_workdir, "-n", check=False)
    assert proc.returncode != 0 and "layers.datasets: unknown dataset 'nope'" in proc.stdout + proc.stderr
    cfg["layers"]["datasets"] = ["sim_blocks"]
    cfg["layers"]["solver"] = "lsq"
    (tiny_workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tiny_workdir, "-n", check=False)
    assert proc.returncode != 0 and "invalid config section 'layers'" in proc.stdout + proc.stderr
    assert not (tiny_workdir / "results").exists()
