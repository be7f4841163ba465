"""The multilayer NMF scripts, in-process: outputs, determinism, figures and one-line failures on bad inputs."""

from __future__ import annotations

import shlex

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import assert_clean_failure, load_tiny_config, run_cli
from scfactor.core import io
from scfactor.core.options import check_argv
from scfactor.layers import smk
from scfactor.layers.cli import (FIT, LOADING_FIGURE, SIMULATE, THETA_FIGURE, layers, layers_gene_loading,
                                 layers_theta_clustermap, simulate_blocks)
from scfactor.layers.simulate import simulate, to_anndata
from scfactor.preprocess.cli import preprocess


def blocks(n_cells, n_factors, n_genes, **kw):
    return simulate(SIMULATE.defaults(n_cells=n_cells, n_factors=n_factors, n_genes=n_genes, **kw))


# --------------------------------------------------------------------------- simulate_blocks
def test_simulate_script_and_nnmf_h5_round_trip_through_preprocess(tmp_path):
    out, h5 = tmp_path / "sim.h5ad", tmp_path / "sim.h5"
    proc = run_cli(simulate_blocks, "--n-cells", 50, "--n-genes", 80, "--n-factors", 5,
                   "--seed", 3, "--output", out, "--nnmf-h5", h5)
    assert proc.returncode == 0, proc.stderr
    sim = io.read_h5ad(out)
    truth = blocks(50, 5, 80, seed=3)
    np.testing.assert_array_equal(sim.X.toarray(), truth.x)
    np.testing.assert_allclose(sim.obsm["theta_true"], truth.theta)
    assert list(sim.obs["block"][:2]) == ["k0", "k0"] and sim.var_names[0] == "c0"
    assert io.detect_format(h5) == "nnmf_h5"
    back = io.read_counts(h5)
    np.testing.assert_array_equal(back.X.toarray(), truth.x)
    assert list(back.obs_names) == [str(i) for i in range(50)]
    pp = tmp_path / "pp.h5ad"
    proc = run_cli(preprocess, "--input", h5, "--output", pp, "--qc-table", tmp_path / "qc.tsv",
                   "--qc-figure", tmp_path / "qc.png", "--n-hvg", 40)
    assert proc.returncode == 0, proc.stderr
    pre = io.read_h5ad(pp)
    keep = np.asarray(truth.x.sum(axis=0) > 0)
    np.testing.assert_array_equal(pre.layers["counts"].toarray(), truth.x[:, keep])


def test_simulate_script_bad_option_fails_cleanly(tmp_path):
    out = tmp_path / "sim.h5ad"
    proc = run_cli(simulate_blocks, "--n-cells", 5, "--n-factors", 10, "--output", out,
                   "--nnmf-h5", tmp_path / "sim.h5")
    assert_clean_failure(proc, mentions="K <= min(N, M)", outputs=[out, tmp_path / "sim.h5"])


def test_simulate_script_out_of_range_option_fails_cleanly(tmp_path):
    out = tmp_path / "sim.h5ad"
    proc = run_cli(simulate_blocks, "--noise-prop", 1.5, "--output", out)
    assert_clean_failure(proc, mentions="--noise-prop", outputs=[out])


# --------------------------------------------------------------------------- layers (fit)
@pytest.fixture(scope="module")
def preprocessed_sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("layers")
    adata = to_anndata(blocks(120, 3, 150, seed=2))
    adata.layers["counts"] = adata.X.copy()
    path = d / "sim.h5ad"
    io.write_h5ad(adata, path)
    return path


def _outputs(d):
    return [d / "fit.h5ad", d / "loss.tsv", d / "metrics.tsv"]


def _fit(inp, d, *extra):
    """The fit on all genes (the input has no gene flags; the default gene set is hvg), on the CPU."""
    out, loss, metrics = _outputs(d)
    return run_cli(layers, "--input", inp, "--output", out, "--loss-table", loss, "--metrics", metrics,
                   "--device", "cpu", "--genes", "all", *extra)


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
    (("--epochs", 0), "--epochs"),
    (("--lr", 0), "--lr"),
    (("--solver", "lsq"), "--solver"),
])
def test_layers_script_bad_inputs(preprocessed_sim, tmp_path, extra, mentions):
    proc = _fit(preprocessed_sim, tmp_path, "--epochs", 2, *extra)
    assert_clean_failure(proc, mentions=mentions, outputs=_outputs(tmp_path))


def test_layers_script_default_genes_are_hvg(preprocessed_sim, tmp_path):
    """Without --genes the fit uses the schema's gene set (hvg), which this input does not flag."""
    out, loss, metrics = _outputs(tmp_path)
    proc = run_cli(layers, "--input", preprocessed_sim, "--output", out, "--loss-table", loss, "--metrics", metrics,
                   "--device", "cpu", "--epochs", 2)
    assert_clean_failure(proc, mentions="highly_variable", outputs=_outputs(tmp_path))


def test_layers_script_missing_and_negative_input(tmp_path):
    missing = tmp_path / "nope.h5ad"
    assert_clean_failure(_fit(missing, tmp_path), mentions="nope.h5ad", outputs=_outputs(tmp_path))
    adata = to_anndata(blocks(30, 2, 40, seed=0))
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
    proc = run_cli(layers, "--input", preprocessed_sim, "--output", out, "--loss-table", loss,
                   "--metrics", metrics, "--device", "cuda")
    assert_clean_failure(proc, mentions="CUDA", outputs=_outputs(tmp_path))


# --------------------------------------------------------------------------- figures
def test_figure_scripts(preprocessed_sim, tmp_path):
    assert _fit(preprocessed_sim, tmp_path, "--layers", 4, 3, "--epochs", 5).returncode == 0
    fit = tmp_path / "fit.h5ad"
    for step, level in ((layers_theta_clustermap, 1), (layers_gene_loading, 2)):
        png, pdf = tmp_path / f"{step.__name__}.png", tmp_path / f"{step.__name__}.pdf"
        proc = run_cli(step, "--input", fit, "--level", level, "--figure", png)
        assert proc.returncode == 0, proc.stderr
        assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"
    png = tmp_path / "l3.png"
    proc = run_cli(layers_theta_clustermap, "--input", fit, "--level", 3, "--figure", png)
    assert_clean_failure(proc, mentions="theta_l3", outputs=[png, png.with_suffix(".pdf")])


def test_top_genes_union():
    from scfactor.layers.plots import top_genes
    beta = np.array([[5, 0], [4, 1], [0, 9], [1, 8]], float)
    assert top_genes(beta, ["a", "b", "c", "d"], 2) == ["a", "b", "c", "d"]
    assert top_genes(beta, ["a", "b", "c", "d"], 1) == ["a", "c"]


# --------------------------------------------------------------------------- rule command lines
@pytest.mark.parametrize("cfg", [load_tiny_config(), {"layers": {}, "simulate": {"blocks": {}}}],
                         ids=["tiny", "defaults"])
def test_rule_command_lines_parse(cfg):
    """The options each rule passes are valid for its script and carry the config's values."""
    for step, cmd in ((FIT, smk.layers_command), (THETA_FIGURE, smk.theta_figure_command),
                      (LOADING_FIGURE, smk.loading_figure_command), (SIMULATE, smk.simulate_blocks_command)):
        check_argv(step, shlex.split(cmd(cfg)))
    words = shlex.split(smk.layers_command(cfg))
    genes = cfg["layers"].get("genes", FIT.defaults().genes)
    assert words[words.index("--genes") + 1] == genes
    assert words[words.index("--epochs") + 1] == str(cfg["layers"].get("epochs", 150))
