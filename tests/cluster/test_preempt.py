"""Preemption of a TensorFlow training job on a real SLURM scheduler: rule `densify` (NeuMF, a checkpoint
per epoch and training phase). The running job is killed by the scheduler (`scancel`, what a preempting
partition does with PreemptMode=CANCEL, and what the profiles' `slurm-no-requeue` turns requeueing into);
Snakemake's retry (profiles/slurm has `retries: 1`) submits attempt 2 with more memory, which resumes from the
checkpoint (its log names the epoch) and writes the same result as an uninterrupted run.

(SLURM's own requeue is not used: with plugin 2.8 and squeue status checks a requeued job can be seen as
FAILED for a moment, so Snakemake resubmits it while SLURM restarts the original: two jobs on the same
outputs. Found with this test; hence `slurm-no-requeue: true` in the profiles.)"""

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

EPOCHS = 12          # enough for a checkpoint to appear before the job ends (about 0.5 s per epoch)
OUT = "results/densify/kang/ctrl.h5ad"
HELDOUT = "results/densify/kang/ctrl.heldout.tsv"
CKPT = "results/densify/checkpoints/kang/ctrl"
LOG = "logs/densify/kang/ctrl.log"


def densify_workdir(path):
    cfg = load_tiny_config()["densify"]
    cfg.update(targets={"kang": ["ctrl"]}, epochs=EPOCHS)
    return write_tiny_workdir(path, densify=cfg)


def test_preempted_densify_job_resumes_from_checkpoint(tmp_path, slurm_cluster):
    wd = densify_workdir(tmp_path / "slurm")
    snakemake(wd, "--cores", "2", "results/preprocess/kang.h5ad")        # its input, built locally
    ref = densify_workdir(tmp_path / "reference")
    shutil.copytree(wd / "results", ref / "results")

    with Background(wd, "--profile", profile("slurm"), *FAST, OUT, env=snakemake_env(slurm_cluster)) as run:
        wait_for(lambda: any((wd / CKPT).glob("*.npz")) or not run.running(), timeout=600, every=0.2,
                 what="the densify job's first checkpoint")
        (job,) = slurm_cluster.jobs("rule_densify_wildcards_kang_ctrl", workdir=wd)
        slurm_cluster.run("scancel", job["id"])
        rc = run.wait(timeout=600)
        log = run.text()
    assert rc == 0, log[-4000:]
    assert re.search(rf"SLURM-job '{job['id']}' failed, SLURM status is: 'CANCELLED'", log), log[-3000:]
    subs = submissions(log)
    assert [(s.rule, s.wildcards, s.opt("--mem")) for s in subs] == [
        ("densify", "kang_ctrl", "4000"), ("densify", "kang_ctrl", "8000")], [s.args for s in subs]
    text = (wd / LOG).read_text()
    m = re.search(r"resuming from epoch (\d+)", text)
    assert m and int(m.group(1)) >= 1, text[-3000:]

    snakemake(ref, "--cores", "2", OUT)                                  # the uninterrupted reference
    assert "resuming" not in (ref / LOG).read_text()
    assert (wd / HELDOUT).read_bytes() == (ref / HELDOUT).read_bytes()
    assert same_h5ad(wd / OUT, ref / OUT)          # the dense matrix and model outputs (run times aside)
