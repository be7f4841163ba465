"""Workflow test: the densify rule and its figure on the tiny config, checked for content."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

import pytest


@pytest.mark.workflow
def test_densify_rule_on_tiny_config(tiny_run):
    """The session's tiny run (tests/conftest.py): NeuMF's output, held-out table, figure and log."""
    tiny_workdir = tiny_run
    target = "results/figures/densify/kang/ctrl.heldout.png"
    pre = ad.read_h5ad(tiny_workdir / "results/preprocess/kang.h5ad")
    out = ad.read_h5ad(tiny_workdir / "results/densify/kang/ctrl.h5ad")
    ctrl = pre[(pre.obs["batch"] == "ctrl").to_numpy()][:, pre.var["liger_selected"].to_numpy(bool)]
    assert list(out.obs_names) == list(ctrl.obs_names)
    assert list(out.var_names) == list(ctrl.var_names)
    assert set(out.obs["batch"]) == {"ctrl"}
    assert (sp.csr_matrix(out.layers["counts"]) != sp.csr_matrix(ctrl.layers["counts"])).nnz == 0
    dense = out.layers["neumf"]
    assert isinstance(dense, np.ndarray) and dense.dtype == np.float32 and dense.shape == out.shape
    assert np.all(np.isfinite(dense)) and np.all(dense >= 0)
    u = out.uns["neumf"]
    assert u["params"]["epochs"] == 2 and u["params"]["loss"] == "nb"
    assert len(u["trace"]["neumf"]["loss"]) == 2
    t = pd.read_csv(tiny_workdir / "results/densify/kang/ctrl.heldout.tsv", sep="\t").set_index("method")
    assert list(t.index) == ["neumf_nb", "zero", "svd_rank20"]
    assert t.loc["neumf_nb", "n"] == u["heldout"]["neumf_nb"]["n"] > 0
    assert np.isclose(t.loc["neumf_nb", "pearson_log1p"], u["heldout"]["neumf_nb"]["pearson_log1p"])
    # NeuMF beats the baselines in the same table on the hidden counts (tiny run: 0.77 vs SVD 0.50)
    assert t.loc["neumf_nb", "pearson_log1p"] > t.loc["svd_rank20", "pearson_log1p"] + 0.1
    assert t.loc["neumf_nb", "rmse"] < min(t.loc["svd_rank20", "rmse"], t.loc["zero", "rmse"])
    assert (tiny_workdir / "results/densify/checkpoints/kang/ctrl/neumf.npz").exists()
    png = tiny_workdir / target
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert (tiny_workdir / "results/figures/densify/kang/ctrl.heldout.pdf").exists()
    log = (tiny_workdir / "logs/densify/kang/ctrl.log").read_text()
    assert "neumf epoch 2/2" in log and "samples/s" in log
