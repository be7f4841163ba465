"""Shard failures and preemption on a real SLURM scheduler, with the MTL fan-out (rule mtl_train_shard,
one file per shard, per-epoch checkpoints) and its aggregate (mtl_aggregate).

2. scancel one shard's job mid-training: --keep-going finishes the other shard; rerunning the same command
   resubmits exactly that shard and the aggregate, the shard resumes from its checkpoint, and the
   aggregate is byte-identical to an uninterrupted run.
4. preemption: a training job is killed mid-run; the rule's retry resumes from its checkpoint (its log
   names the epoch) and writes the same shard file as an uninterrupted run.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from cluster.slurm import (FAST, Background, profile, slurm_cluster, snakemake_env,  # noqa: F401
                           reported_cancelled, submissions, submitted_jobs, wait_for,
                           write_tiny_workdir)
from conftest import REPO, load_tiny_config, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(1200),
              pytest.mark.skipif(not (REPO / "workflow" / "rules" / "mtl.smk").exists(),
                                 reason="needs the MTL rules (workflow/rules/mtl.smk, branch mtl)")]

EPOCHS = 250          # long enough (tens of seconds) to interrupt a shard between checkpoints
TISSUE = "tissue1"
AGG = "results/mtl/sim/r2.tsv"
#: one shard per submission (profiles/slurm bundles up to 120 into a job group): cancelling one shard's job
#: then stops that shard only, which is what these tests are about
ALONE = ("--group-components", "mtl_shards=1")


def shard_target(cluster: str) -> str:
    return f"run=sim,tissue={TISSUE},model=tracenorm,cluster={cluster},rep=0"


def shard_file(cluster: str) -> str:
    return f"results/mtl/sim/{TISSUE}/shards/tracenorm/c{cluster}_r0.tsv"


def checkpoint(wd: Path, cluster: str) -> Path:
    return wd / f"results/mtl/checkpoints/sim/{TISSUE}/tracenorm/c{cluster}_r0/state.npz"


def shard_log(wd: Path, cluster: str) -> Path:
    return wd / f"logs/mtl_train_shard/sim/{TISSUE}/tracenorm/{cluster}/0.log"


def mtl_workdir(path: Path) -> Path:
    """The tiny config's simulated MTL run only: 1 tissue x 2 gene clusters x 1 replicate, no
    lambda=0 ablation (2 shards), trained for EPOCHS epochs."""
    mtl = load_tiny_config()["mtl"]
    mtl["datasets"] = {"sim": {"source": "simulated"}}
    mtl["n_clusters"], mtl["reps"] = 2, 1
    mtl["train"].update(epochs=EPOCHS, ablation=False, checkpoint_seconds=0)   # a checkpoint every epoch
    return write_tiny_workdir(path, mtl=mtl)


@pytest.fixture(scope="module")
def uninterrupted(killed_and_rerun, tmp_path_factory):
    """The reference: both shards and the aggregate trained locally without interruption, from the same
    upstream files (simulated data, lasso, gene clusters) as the SLURM run (copied, so not recomputed)."""
    src = killed_and_rerun[0]
    wd = mtl_workdir(tmp_path_factory.mktemp("mtl_ref"))
    shutil.copytree(src / "results", wd / "results")
    for f in (AGG, "results/mtl/sim/summary.tsv"):
        (wd / f).unlink()
    shutil.rmtree(wd / f"results/mtl/sim/{TISSUE}/shards")
    shutil.rmtree(wd / "results/mtl/checkpoints", ignore_errors=True)
    proc = snakemake(wd, "--cores", "2", AGG)
    ran = [ln.split()[-1].rstrip(":") for ln in (proc.stdout + proc.stderr).splitlines()
           if ln.startswith(("rule ", "localrule "))]
    assert sorted(ran) == ["mtl_aggregate", "mtl_train_shard", "mtl_train_shard"], ran
    return wd


def cancel_every_attempt(run, cluster, wd, shard: str) -> list[str]:
    """scancel shard ``shard``'s job once it has checkpointed, and every retry Snakemake submits for it
    (profiles/slurm has `retries: 1`), until Snakemake gives up on it and exits. Returns the cancelled job ids."""
    wait_for(lambda: checkpoint(wd, shard).exists() or not run.running(), timeout=600, every=0.2,
             what=f"shard c{shard} to write its first checkpoint")
    cancelled = []
    while run.running():
        for job in cluster.jobs_running("mtl_train_shard", shard_target(shard), wd):
            if job["id"] not in cancelled:
                cluster.run("scancel", job["id"])
                cancelled.append(job["id"])
        time.sleep(0.5)
    return cancelled


@pytest.fixture(scope="module")
def killed_and_rerun(tmp_path_factory, slurm_cluster):
    """Run the aggregate through profiles/slurm with --keep-going and scancel shard c01 mid-training (and
    its retries), then rerun the same command. Returns (workdir, first log, rerun log, cancelled ids)."""
    wd = mtl_workdir(tmp_path_factory.mktemp("mtl_slurm"))
    # the shards' inputs (simulated data, lasso, gene clusters) are built locally: this test is about
    # the shards; the tiny-config test sends those rules through SLURM already
    snakemake(wd, "--cores", "2", f"results/mtl/sim/{TISSUE}/clusters.tsv")
    args = ("--profile", profile("slurm"), *FAST, *ALONE, "--keep-going", AGG)
    with Background(wd, *args, env=snakemake_env(slurm_cluster), log_name="first.log") as run:
        cancelled = cancel_every_attempt(run, slurm_cluster, wd, "01")
        rc = run.wait(timeout=60)
        first = run.text()
    assert rc != 0 and cancelled, first[-3000:]
    after_first = {f: (wd / f).exists() for f in (shard_file("00"), shard_file("01"), AGG)}
    rerun = snakemake(wd, *args, env=slurm_cluster.env)
    return wd, first, rerun.stdout + rerun.stderr, cancelled, after_first


def test_scancel_one_shard_keep_going_then_rerun(killed_and_rerun, uninterrupted, slurm_cluster):
    wd, first, rerun, cancelled, after_first = killed_and_rerun
    # every cancelled attempt was reported as such (the profile retries), the other shard finished, the
    # aggregate did not run
    for job_id in cancelled:
        assert reported_cancelled(first, job_id, wd), first[-3000:]
    first_subs = sorted(wc for _, wc in submitted_jobs(first))
    assert first_subs == sorted(["sim_tissue1_tracenorm_00_0"] + ["sim_tissue1_tracenorm_01_0"] * len(cancelled))
    assert after_first == {shard_file("00"): True, shard_file("01"): False, AGG: False}
    # the rerun submitted exactly the cancelled shard and what depends on it
    assert sorted(submitted_jobs(rerun)) == [
        ("mtl_aggregate", "sim"), ("mtl_train_shard", "sim_tissue1_tracenorm_01_0")]
    # ... which resumed from the checkpoint the cancelled job left
    m = re.search(r"resuming from epoch (\d+)", shard_log(wd, "01").read_text())
    assert m and 1 <= int(m.group(1)) < EPOCHS, shard_log(wd, "01").read_text()[-2000:]
    # same numbers as the uninterrupted run, byte for byte
    for f in (AGG, shard_file("00"), shard_file("01")):
        assert (wd / f).read_bytes() == (uninterrupted / f).read_bytes(), f


def test_one_missing_shard_by_its_file(killed_and_rerun, uninterrupted, slurm_cluster):
    """`snakemake --profile profiles/slurm <shard output>` resubmits exactly that shard."""
    wd = killed_and_rerun[0]
    for f in (wd / shard_file("01")).parent.glob("c01_r0.*"):
        f.unlink()
    proc = snakemake(wd, "--profile", profile("slurm"), *FAST, shard_file("01"), env=slurm_cluster.env)
    assert [s.jobs for s in submissions(proc.stdout + proc.stderr)] == [[
        ("mtl_train_shard", "sim_tissue1_tracenorm_01_0")]]
    assert (wd / shard_file("01")).read_bytes() == (uninterrupted / shard_file("01")).read_bytes()


def test_preempted_training_job_resumes_from_checkpoint(killed_and_rerun, uninterrupted, slurm_cluster):
    """Preemption: the running shard is killed (scancel, as PreemptMode=CANCEL does); the rule's retry
    resumes from its checkpoint within the same Snakemake run and the results are unchanged. The run is
    the documented `<target> --forcerun <shard output>`: only that shard and the aggregate are submitted."""
    wd = killed_and_rerun[0]
    args = ("--profile", profile("slurm"), *FAST, AGG, "--forcerun", shard_file("00"))
    with Background(wd, *args, env=snakemake_env(slurm_cluster), log_name="preempt.log") as run:
        wait_for(lambda: checkpoint(wd, "00").exists() or not run.running(), timeout=600, every=0.2,
                 what="shard c00 to write a checkpoint")
        (job,) = slurm_cluster.jobs_running("mtl_train_shard", shard_target("00"), wd)
        slurm_cluster.run("scancel", job["id"])
        rc = run.wait(timeout=900)
        log = run.text()
    assert rc == 0, log[-4000:]
    subs = [(s.jobs, s.opt("--mem")) for s in submissions(log)]
    shard = [("mtl_train_shard", "sim_tissue1_tracenorm_00_0")]      # a job group of one shard
    assert [x for x in subs if x[0] == shard] == [(shard, "4000"), (shard, "8000")], subs
    assert [x[0] for x in subs if x[0] != shard] == [[("mtl_aggregate", "sim")]], subs
    text = shard_log(wd, "00").read_text()
    m = re.search(r"resuming from epoch (\d+)", text)
    assert m and 1 <= int(m.group(1)) < EPOCHS, text[-2000:]
    assert f"epoch {EPOCHS}/{EPOCHS}" in text
    for f in (AGG, shard_file("00")):
        assert (wd / f).read_bytes() == (uninterrupted / f).read_bytes(), f
