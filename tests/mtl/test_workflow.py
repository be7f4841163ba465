"""Workflow tests: the MTL rules on the tiny config (simulated layout + pancreas), shard rerun byte-identity."""

from __future__ import annotations

import hashlib
import shutil

import pandas as pd
import pytest

from conftest import snakemake

TARGETS = ["results/mtl/sim/r2.tsv", "results/mtl/pancreas/r2.tsv",
           "results/figures/mtl/sim_comparison.png", "results/figures/mtl/sim_clusters.png",
           "results/figures/mtl/pancreas_comparison.png"]


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.workflow
@pytest.mark.slow
def test_mtl_workflow_tiny(tiny_run):
    wd = tiny_run
    r2 = pd.read_csv(wd / "results/mtl/sim/r2.tsv", sep="\t")
    # 1 tissue x 8 genes x 2 models x 1 rep, every gene in exactly one cluster, lasso joined on the same split
    assert len(r2) == 16 and set(r2["model"]) == {"tracenorm", "lambda0"}
    assert r2.groupby("model")["gene"].nunique().eq(8).all()
    assert r2["r2"].notna().all() and r2["lasso_r2"].notna().all()
    assert (r2["n_test"] > 0).all() and (r2["n_train"] > r2["n_test"]).all()
    assert set(r2.loc[r2["model"] == "lambda0", "lambda"]) == {0.0}
    truth = pd.read_csv(wd / "results/simulate/mtl/truth/genes.tsv", sep="\t")
    assert set(r2["gene"]) <= set(truth["gene_ensembl"])
    summ = pd.read_csv(wd / "results/mtl/sim/summary.tsv", sep="\t")
    assert set(summ["model"]) == {"tracenorm", "lambda0"} and (summ["genes"] == 8).all()
    # on the planted simulation the trace norm is at least its lambda = 0 ablation (tiny run: 0.2525 vs 0.2506)
    by = summ.set_index("model")["mean_r2"]
    assert by["tracenorm"] >= by["lambda0"], by
    pan = pd.read_csv(wd / "results/mtl/pancreas/r2.tsv", sep="\t")
    assert set(pan["tissue"]) == {"Ductal"} and len(pan) == 8
    for png in TARGETS[2:]:
        assert (wd / png).stat().st_size > 10_000
        assert (wd / png).with_suffix(".pdf").exists()
    # velocity layout of the real data: layout files exist and have the pancreas' genes
    assert (wd / "results/mtl/pancreas/input/tf_activity/mean_tf/Ductal.csv").exists()
    # one log per shard job, named by its wildcards (run, tissue, model, cluster, rep)
    assert "epoch 2/2" in (wd / "logs/mtl_train_shard/sim/tissue1/tracenorm/01/0.log").read_text()


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_one_shard_rerun_alone_is_byte_identical(tiny_run, tmp_path):
    """One shard asked for alone (its file deleted) comes back byte-identical; so does a --forcerun."""
    wd = tmp_path / "wd"
    shutil.copytree(tiny_run, wd, symlinks=True)
    shard = wd / "results/mtl/sim/tissue1/shards/tracenorm/c01_r0.tsv"
    weights = shard.with_name("c01_r0.weights.npz")
    before, wbefore = sha(shard), sha(weights)
    shard.unlink()
    weights.unlink()
    proc = snakemake(wd, "-c", "1", str(shard.relative_to(wd)))
    assert "mtl_train_shard" in proc.stderr and "mtl_aggregate" not in proc.stderr.split("Job stats")[1][:400]
    assert sha(shard) == before and sha(weights) == wbefore
    # --forcerun of that one shard's file: same bytes again
    snakemake(wd, "-c", "1", "--forcerun", str(shard.relative_to(wd)), "--", str(shard.relative_to(wd)))
    assert sha(shard) == before
    assert not (wd / "results/mtl/checkpoints/sim/tissue1/tracenorm/c01_r0").exists()
