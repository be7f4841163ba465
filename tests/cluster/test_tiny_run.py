"""The workflow on a real SLURM scheduler (tests/cluster/local_slurm.sh): profiles/slurm end to end,
single-shard reruns, and the memory retry.  Select with ``pytest -m slurm``; they run with plain ``pytest``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cluster.slurm import (FAST, different_results, file_digests, job_stats, profile,  # noqa: F401
                           slurm_cluster, submissions, submitted_jobids, submitted_jobs, write_tiny_workdir)
from conftest import REPO, snakemake
from scfactor.core.requests import input_cells, scaled_request

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(1800)]


#: final outputs of the tiny config whose DAG holds every rule of the workflow once or more (39 of its 53
#: jobs): every rule is sent through sbatch, with fewer repeats of the same rule than the whole config
SLURM_TARGETS = (
    "results/figures/qc/kang.png", "results/figures/densify/kang/ctrl.heldout.png",
    "results/figures/integrate/sim_batches.umap.png", "results/figures/layers/sim_blocks_theta_l1.png",
    "results/figures/layers/sim_blocks_beta_l1.png", "results/figures/nbmix/seed004_tiny.umap.png",
    "results/nbmix/summary.tsv", "results/grn/summary.tsv",
    "results/figures/grn/kang_cd14mono_ctrl_to_stim_edges.png", "results/figures/mtl/sim_comparison.png",
    "results/mtl/pancreas/input/tf_list.csv", "results/report/config.tsv",
)
#: rules that are not in the tiny config's DAG: `all` (no action) and the benchmark tables of the report
#: (figures.benchmark_tables is off outside the demo and paper configs)
NOT_IN_TINY_DAG = {"all", "report_benchmark"}
#: densify's prediction fan-out (densify.predict_shards > 1 replaces the single `densify` rule): sent through
#: sbatch by test_densify_fan_out_through_sbatch
FANOUT_RULES = {"densify_train", "densify_predict", "densify_gather"}
#: MTL shards per submission in this test (the profile bundles up to 120): the tiny DAG's 4 shards go in
#: two submissions of 3 and 1, each running at most `shard_slots` (2) shards at a time
GROUP = 3


def workflow_rules() -> set[str]:
    """Every rule defined in workflow/rules/*.smk."""
    return {m.group(1) for smk in (REPO / "workflow" / "rules").glob("*.smk")
            for m in re.finditer(r"^rule (\w+):", smk.read_text(), re.M)}


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, slurm_cluster):
    """The tiny config's SLURM_TARGETS run with profiles/slurm; returns (workdir, snakemake log text)."""
    wd = write_tiny_workdir(tmp_path_factory.mktemp("slurm"))
    proc = snakemake(wd, "--profile", profile("slurm"), *FAST, *SLURM_TARGETS, "--group-components",
                     f"mtl_shards={GROUP}", env=slurm_cluster.env)
    return wd, proc.stdout + proc.stderr


def test_tiny_config_every_job_through_sbatch(slurm_run, tiny_run):
    """tiny_run (tests/conftest.py): the same config run locally, the reference."""
    wd, log = slurm_run
    stats = job_stats(log)
    remote = {rule: n for rule, n in stats.items() if rule != "all"}   # `all` has no action: local
    expected = workflow_rules() - NOT_IN_TINY_DAG - FANOUT_RULES
    assert set(remote) == expected, sorted(set(remote) ^ expected)
    subs = submissions(log)
    jobs = submitted_jobs(log)
    assert remote and sum(remote.values()) == len(jobs), (stats, jobs)
    assert {r: sum(j[0] == r for j in jobs) for r, _ in jobs} == remote
    # the MTL shards went in job groups of at most GROUP; every other rule alone
    groups = [s for s in subs if s.group]
    assert all(s.rule == "mtl_train_shard" for s in groups) and all(len(s.jobs) == 1 for s in subs if not s.group)
    shards = remote["mtl_train_shard"]
    assert sorted(len(s.jobs) for s in groups) == sorted([GROUP] * (shards // GROUP) + [shards % GROUP] * (shards % GROUP > 0))
    assert len(subs) == sum(remote.values()) - shards + len(groups)
    for s in groups:   # width: 2 shards at a time (shard_slots); walltime: 3 min per layer of shards
        width = min(2, len(s.jobs))
        layers = -(-len(s.jobs) // 2)
        assert (s.opt("--cpus-per-task"), s.opt("--mem"), s.opt("-t")) == (str(width), str(4000 * width), str(3 * layers)), s.args
    ids = submitted_jobids(log)
    assert len(ids) == len(subs) and len(set(ids)) == len(ids)
    for s in subs:   # CPU partition, memory and walltime from the rule, no accelerator requested
        assert s.opt("-p") == "cpu" and int(s.opt("--mem")) > 0 and int(s.opt("-t")) > 0, s.args
        assert s.opt("--gpus") is None, s.args
    pre = {s.wildcards: s for s in subs if s.rule == "preprocess"}
    assert {"kang", "pancreas", "pbmc3k"} <= set(pre) and all(s.opt("--mem") == "4000" for s in pre.values())
    # steps whose memory grows with their cells asked for it from their input, made earlier in the same run
    (inte,) = [s for s in subs if s.rule == "integrate" and s.wildcards == "sim_batches_counts"]
    sim_cells = input_cells(wd / "results" / "simulate" / "batches.h5ad")
    assert sim_cells == 280 and inte.opt("--mem") == str(scaled_request(2000, 15, wd / "results/simulate/batches.h5ad"))
    assert inte.opt("--mem") == "2004", inte.args   # the tiny config's integrate.mem_mb 2000 + 15 MB x 0.28
    # each job ran inside SLURM: its log under .snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log
    logs = sorted((wd / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert sorted(p.stem for p in logs) == sorted(ids), logs
    for ds in pre:
        (log_file,) = (wd / ".snakemake" / "slurm_logs" / "rule_preprocess" / ds).glob("*.log")
        text = log_file.read_text()
        assert re.search(r"(local)?rule preprocess:", text) and f"dataset={ds}" in text, text[-2000:]
    # identical results: every file the SLURM run made equals the local run's, byte for byte (h5ad by content,
    # recorded run times aside)
    assert different_results(wd, tiny_run, a_is_subset=True) == []


def test_densify_fan_out_through_sbatch(tmp_path, slurm_cluster, tiny_run):
    """densify.predict_shards: 2 on the tiny config's kang/ctrl (inputs from the local tiny run): the training
    job, both prediction shards in ONE submission (--group-components densify_predict=2) and the gather job
    go through sbatch, and the dense layer is the local single job's."""
    import shutil

    import anndata as ad
    import numpy as np

    from conftest import load_tiny_config
    densify = {**load_tiny_config()["densify"], "predict_shards": 2, "predict_block": 2000}
    wd = write_tiny_workdir(tmp_path / "fanout", densify=densify)
    for made in ("results/checks", "results/preprocess"):
        shutil.copytree(tiny_run / made, wd / made, copy_function=shutil.copy2)
    out = "results/densify/kang/ctrl.h5ad"
    proc = snakemake(wd, "--profile", profile("slurm"), *FAST, out, "--group-components", "densify_predict=2",
                     env=slurm_cluster.env)
    log = proc.stdout + proc.stderr
    assert job_stats(log) == {"densify_train": 1, "densify_predict": 2, "densify_gather": 1}, job_stats(log)
    subs = submissions(log)
    assert sorted((s.rule, len(s.jobs), bool(s.group)) for s in subs) == [
        ("densify_gather", 1, False), ("densify_predict", 2, True), ("densify_train", 1, False)], [s.args for s in subs]
    assert all(s.opt("-p") == "cpu" and s.opt("--gpus") is None for s in subs), [s.args for s in subs]
    fan, one = ad.read_h5ad(wd / out), ad.read_h5ad(tiny_run / out)
    assert fan.layers["neumf"].shape == one.layers["neumf"].shape
    np.testing.assert_allclose(fan.layers["neumf"], one.layers["neumf"], rtol=1e-6)


def test_rerun_one_shard_and_forcerun(slurm_run, slurm_cluster):
    """The documented single-shard commands: ask for one shard's output; --forcerun one good shard."""
    wd, _ = slurm_run
    before = file_digests(wd)
    # 1. one shard's outputs are lost: asking for that file resubmits exactly that job
    for f in (wd / "results" / "preprocess").glob("pancreas.*"):
        f.unlink()
    proc = snakemake(wd, "--profile", profile("slurm"), *FAST, "results/preprocess/pancreas.h5ad",
                     env=slurm_cluster.env)
    subs = submissions(proc.stdout + proc.stderr)
    assert [(s.rule, s.wildcards) for s in subs] == [("preprocess", "pancreas")]
    assert file_digests(wd) == before
    # 2. recompute a good shard: <its output> --forcerun <its output> resubmits that job only
    proc = snakemake(wd, "--profile", profile("slurm"), *FAST, "results/preprocess/kang.h5ad",
                     "--forcerun", "results/preprocess/kang.h5ad", env=slurm_cluster.env)
    subs = submissions(proc.stdout + proc.stderr)
    assert [(s.rule, s.wildcards) for s in subs] == [("preprocess", "kang")]
    assert file_digests(wd) == before


def node_memory_mb(cluster) -> int:
    """RealMemory of the test cluster's (single) node, in MB."""
    out = cluster.run("scontrol", "show", "node").stdout
    return int(re.search(r"RealMemory=(\d+)", out).group(1))


def test_memory_retry_attempt2_asks_for_more(tmp_path, slurm_cluster):
    """Attempt 1 gets too little memory for the step (memory guard), attempt 2 is submitted with more."""
    mem = node_memory_mb(slurm_cluster)
    if mem < 8000:   # attempt 2 asks for 2 x 4000 MB; a smaller node can never run it
        pytest.skip(f"needs a SLURM node with >= 8000 MB for the second attempt; this node has {mem} MB")
    wd = write_tiny_workdir(tmp_path)
    proc = snakemake(wd, "--profile", profile("slurm"), *FAST, "results/preprocess/pbmc3k.qc.tsv",
                     env={**slurm_cluster.env, "SCFACTOR_MIN_MEM_MB": "preprocess=6000"})
    log = proc.stdout + proc.stderr
    pre = [s for s in submissions(log) if s.rule == "preprocess"]
    assert [s.opt("--mem") for s in pre] == ["4000", "8000"], [s.args for s in pre]
    assert (wd / "results" / "preprocess" / "pbmc3k.qc.tsv").stat().st_size > 0
    # attempt 1's SLURM log (kept) holds the guard's one-line reason
    first = submitted_jobids(log)[[s.rule for s in submissions(log)].index("preprocess")]
    (slurm_log,) = (wd / ".snakemake" / "slurm_logs").rglob(f"{first}.log")
    reason = rf"error: preprocess: SLURM job {first} was granted 4000 MB but this step needs 6000 MB"
    assert re.search(reason, log), log[-3000:]             # the failed attempt's log, shown by Snakemake
    assert "Error in rule preprocess" in slurm_log.read_text()
    # the successful attempt ran with 8000 MB and left a clean log
    assert "error:" not in (wd / "logs" / "preprocess" / "pbmc3k.log").read_text()
