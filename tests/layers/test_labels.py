"""Which cells the multilayer NMF's ``ari_label`` is computed on: the label column (``label_key``), a subset of
labels (``labels_keep``), integer-coded labels, and a warning with a NaN score when no cell can be scored; the
theta clustermap colours cells by the same column; ``--level`` is range-checked."""

from __future__ import annotations

import shlex

import numpy as np
import pandas as pd
import pytest

from conftest import load_tiny_config, run_cli
from scfactor.core import io
from scfactor.layers import smk
from scfactor.layers.cli import SIMULATE, THETA_FIGURE, layers, layers_gene_loading, layers_theta_clustermap
from scfactor.layers.simulate import simulate, to_anndata

N = 60


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """60 cells x 80 genes in 3 blocks: obs['block'] (k0..k2) and obs['code'] (the block as an integer 0..2)."""
    adata = to_anndata(simulate(SIMULATE.defaults(n_cells=N, n_factors=3, n_genes=80, seed=2)))
    adata.layers["counts"] = adata.X.copy()
    adata.obs["code"] = adata.obs["block"].astype(str).str[1:].astype(int).to_numpy()
    path = tmp_path_factory.mktemp("layers_labels") / "sim.h5ad"
    io.write_h5ad(adata, path)
    return path, adata.obs["code"].to_numpy()


def _fit(inp, d, *extra):
    out = [d / "fit.h5ad", d / "loss.tsv", d / "metrics.tsv"]
    proc = run_cli(layers, "--input", inp, "--output", out[0], "--loss-table", out[1], "--metrics", out[2],
                   "--device", "cpu", "--genes", "all", "--layers", 3, 2, "--epochs", 5, *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, pd.read_csv(out[2], sep="\t").set_index("metric")["value"]


def test_label_key_names_another_column(sim, tmp_path):
    proc, m = _fit(sim[0], tmp_path, "--label-key", "block")
    assert m["n_labelled"] == N and -1 <= m["ari_label"] <= 1
    assert "WARNING" not in proc.stderr


def test_missing_label_column_warns_and_scores_nan(sim, tmp_path):
    """The default label_key (label) is absent: one warning line with the number of cells, ari_label NaN."""
    proc, m = _fit(sim[0], tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if "no cell scored" in ln]
    assert len(lines) == 1 and f"0 of {N} cells" in lines[0] and "no obs column 'label'" in lines[0]
    assert m["n_labelled"] == 0 and np.isnan(m["ari_label"])


def test_labels_keep_with_integer_codes(sim, tmp_path):
    """Integer-coded labels: --labels-keep 0 2 scores the cells coded 0 or 2."""
    _, codes = sim
    proc, m = _fit(sim[0], tmp_path, "--label-key", "code", "--labels-keep", 0, 2)
    assert m["n_labelled"] == np.isin(codes, [0, 2]).sum() and "WARNING" not in proc.stderr


def test_labels_keep_matching_nothing_warns(sim, tmp_path):
    proc, m = _fit(sim[0], tmp_path, "--label-key", "block", "--labels-keep", "K0")
    assert "no cell scored" in proc.stderr and "labels_keep" in proc.stderr and "k0, k1, k2" in proc.stderr
    assert np.isnan(m["ari_label"])


def test_theta_figure_colours_by_label_key(sim, tmp_path):
    _fit(sim[0], tmp_path, "--label-key", "block")
    png = tmp_path / "theta.png"
    proc = run_cli(layers_theta_clustermap, "--input", tmp_path / "fit.h5ad", "--level", 1, "--label-key", "block",
                   "--figure", png)
    assert proc.returncode == 0 and "WARNING" not in proc.stderr, proc.stderr
    proc = run_cli(layers_theta_clustermap, "--input", tmp_path / "fit.h5ad", "--level", 1, "--label-key", "nope",
                   "--figure", png)
    assert proc.returncode == 0 and f"no obs column 'nope' (label_key; {N} cells)" in proc.stderr


@pytest.mark.parametrize("step", [layers_theta_clustermap, layers_gene_loading])
@pytest.mark.parametrize("level", ["0", "-1", "x"])
def test_level_is_range_checked(sim, tmp_path, step, level):
    png = tmp_path / "f.png"
    proc = run_cli(step, "--input", sim[0], "--level", level, "--figure", png)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "--level" in errors[0] and not png.exists()


def test_rule_command_lines_carry_label_options():
    cfg = load_tiny_config()
    cfg["layers"].update(label_key="cell_type", labels_keep=["B", 4])
    fit = shlex.split(smk.layers_command(cfg))
    assert fit[fit.index("--label-key") + 1] == "cell_type"
    i = fit.index("--labels-keep")
    assert fit[i + 1:i + 3] == ["B", "4"]
    theta = shlex.split(smk.theta_figure_command(cfg))
    assert theta[theta.index("--label-key") + 1] == "cell_type" and "--labels-keep" not in theta
    assert THETA_FIGURE.defaults().label_key == "label"
