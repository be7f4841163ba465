"""Preemption of a TensorFlow training job on a real SLURM scheduler: rule `densify` (NeuMF, a checkpoint
per epoch and training phase). SLURM requeues the running job (as a preempting partition with
PreemptMode=REQUEUE does); it runs again under the same job id while Snakemake keeps waiting, resumes from
its checkpoint (its log names the epoch) and writes the same result as an uninterrupted run."""

from __future__ import annotations

import re
import shutil

import pytest

from cluster.slurm import (FAST, Background, profile, same_h5ad, slurm_cluster,  # noqa: F401
                           snakemake_env, submissions, wait_for, write_tiny_workdir)
from conftest import REPO, load_tiny_config, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(not (REPO / "workflow" / "rules" / "densify.smk").exists(),
                                 reason="needs the densify rule (workflow/rules/densify.smk)")]

EPOCHS = 30
OUT = "results/densify/kang/ctrl.h5ad"
HELDOUT = "results/densify/kang/ctrl.heldout.tsv"
CKPT = "results/densify/kang/ctrl.ckpt"
LOG = "logs/densify/kang/ctrl.log"


def densify_workdir(path):
    cfg = load_tiny_config()["densify"]
    cfg.update(targets={"kang": ["ctrl"]}, epochs=EPOCHS)
    return write_tiny_workdir(path, densify=cfg)


def test_requeued_densify_job_resumes_from_checkpoint(tmp_path, slurm_cluster):
    wd = densify_workdir(tmp_path / "slurm")
    snakemake(wd, "--cores", "2", "results/preprocess/kang.h5ad")        # its input, built locally
    ref = densify_workdir(tmp_path / "reference")
    shutil.copytree(wd / "results", ref / "results")

    with Background(wd, "--profile", profile("slurm"), *FAST, OUT, env=snakemake_env(slurm_cluster)) as run:
        wait_for(lambda: any((wd / CKPT).glob("*.npz")) or not run.running(), timeout=600, every=0.2,
                 what="the densify job's first checkpoint")
        (job,) = slurm_cluster.jobs("rule_densify_wildcards_kang_ctrl")
        slurm_cluster.run("scontrol", "requeue", job["id"])
        # a requeued job waits ~2 minutes (BeginTime) before it may start again; release it now
        wait_for(lambda: [j for j in slurm_cluster.jobs(job["comment"]) if j["state"] == "PENDING"],
                 timeout=60, every=0.2, what="the requeued job to be pending")
        slurm_cluster.run("scontrol", "update", f"JobId={job['id']}", "StartTime=now")
        rc = run.wait(timeout=600)
        log = run.text()
    assert rc == 0, log[-4000:]
    assert [(s.rule, s.wildcards) for s in submissions(log)] == [("densify", "kang_ctrl")], \
        "a requeued job keeps its id: nothing is resubmitted"
    text = (wd / LOG).read_text()
    m = re.search(r"resuming from epoch (\d+)", text)
    assert m and int(m.group(1)) >= 1, text[-3000:]

    snakemake(ref, "--cores", "2", OUT)                                  # the uninterrupted reference
    assert "resuming" not in (ref / LOG).read_text()
    assert (wd / HELDOUT).read_bytes() == (ref / HELDOUT).read_bytes()
    assert same_h5ad(wd / OUT, ref / OUT)          # the dense matrix and model outputs (run times aside)
