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


@pytest.mark.workflow
def test_fan_out_rules_write_the_single_jobs_output(tiny_workdir, tiny_run):
    """densify.predict_shards: 3 on the tiny config (--cores 1): a training job, 3 prediction shards, a gather
    job; the output's layer, held-out table and figure inputs are the single job's byte for byte, and one
    shard's file is re-created alone, identical."""
    import yaml

    from conftest import snakemake
    from scfactor.densify.fanout import shard_cells
    from scfactor.densify.pipeline import heldout_arrays

    import shutil

    wd = tiny_workdir
    for made in ("results/checks", "results/preprocess"):      # the session's tiny run made the inputs
        shutil.copytree(tiny_run / made, wd / made, copy_function=shutil.copy2)
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["densify"]["predict_block"] = 2000

    def run(shards, target, *args):
        cfg["densify"]["predict_shards"] = shards
        (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        proc = snakemake(wd, "--cores", "1", target.relative_to(wd), *args)
        return proc.stdout + proc.stderr

    h5ad, tsv = wd / "results/densify/kang/ctrl.h5ad", wd / "results/densify/kang/ctrl.heldout.tsv"
    shard = wd / "results/densify/fanout/kang/ctrl/shard1.npy"
    log = run(3, tsv)
    assert "rule preprocess" not in log and "densify_predict" in log and "densify_gather" in log
    assert not shard.exists()                                  # temporary: removed once the output is written
    fan = ad.read_h5ad(h5ad)
    fan_tsv = tsv.read_bytes()
    fan_h5ad = shutil.copy2(h5ad, wd / "fan.h5ad")
    start, stop = shard_cells(*fan.shape, 2000, 3, 1)
    assert 0 < start < stop < fan.n_obs

    log = run(3, shard, "--forcerun", "densify_predict")      # one shard's file: that shard alone, identical
    assert "densify_train" not in log and "densify_gather" not in log and "shard=1" in log
    assert "shard=0" not in log and "shard=2" not in log
    assert np.load(shard).tobytes() == fan.layers["neumf"][start:stop].tobytes()

    shutil.rmtree(wd / "results/densify/checkpoints")           # the single job trains anew
    run(1, tsv, "--forcerun", "densify")
    one = ad.read_h5ad(h5ad)
    assert tsv.read_bytes() == fan_tsv
    assert one.layers["neumf"].tobytes() == fan.layers["neumf"].tobytes()
    (ha, ta, pa, _), (hb, tb, pb, _) = heldout_arrays(h5ad), heldout_arrays(fan_h5ad)   # the figure's inputs
    for a, b in [(ha.rows, hb.rows), (ha.cols, hb.cols), (ha.values, hb.values), (pa, pb),
                 (ta[0:ta.shape[0]].toarray(), tb[0:tb.shape[0]].toarray())]:
        assert a.tobytes() == b.tobytes()
