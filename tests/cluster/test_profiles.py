"""Fast checks of the cluster profiles (placement by dry run, no scheduler needed) and of the memory guard."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from cluster.slurm import profile, write_tiny_workdir
from conftest import REPO, load_tiny_config, snakemake
from scfactor.core import memory as cluster
from scfactor.core.memory import ResourceError, check_memory, granted_memory_mb, required_memory_mb

pytestmark = pytest.mark.timeout(600)


# ------------------------------------------------------------------------------------------------
# placement: what each profile does to every job of the DAG (dry run)

def dry_run_jobs(workdir, *args, env=None) -> list[dict]:
    """[{rule, resources: {name: value}}] of every job in ``snakemake -n --forceall`` output."""
    proc = snakemake(workdir, "-n", "--forceall", *args, env=env)
    jobs, current = [], None
    for line in (proc.stdout + proc.stderr).splitlines():
        s = line.strip()
        if (line.startswith("rule ") or line.startswith("localrule ")) and s.endswith(":"):
            current = {"rule": s.split()[1].rstrip(":"), "resources": {}}
            jobs.append(current)
        elif current is not None and s.startswith("resources:"):
            for item in s.removeprefix("resources:").split(","):
                key, _, value = item.strip().partition("=")
                current["resources"][key] = value
    assert jobs, proc.stdout[-2000:]
    return jobs


def num(job, name) -> int:
    return int(job["resources"].get(name) or 0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny config with the MTL shards on the TensorFlow engine, the one that can use an accelerator
    (the default numpy engine asks for none: test_numpy_engine_shards_ask_for_no_accelerator)."""
    mtl = load_tiny_config()["mtl"]
    mtl["train"]["engine"] = "tensorflow"
    return write_tiny_workdir(tmp_path_factory.mktemp("profiles"), mtl=mtl)


@pytest.fixture(scope="module")
def declared(tiny):
    """Rules of the tiny DAG and the gpu / tpu they declare (no profile: nothing scaled down)."""
    rules = {}
    for job in dry_run_jobs(tiny):
        rules[job["rule"]] = (num(job, "gpu"), num(job, "tpu"))
    return rules


def profile_rules(name, key="set-resources") -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text()).get(key) or {}


def zeroed_gpu_rules(name) -> set:
    """Rules a profile sets to `gpu: 0` (needed on CPU partitions: the plugin's job step re-reads
    set-resources, not a global `resources: gpu: 0`, and would run `srun --gpus=1` in a job without GPUs)."""
    return {rule for rule, res in profile_rules(name).items() if res.get("gpu") == 0}


def test_cpu_placed_gpu_rules_are_zeroed_in_profiles(declared):
    gpu_rules = {rule for rule, (gpu, _) in declared.items() if gpu > 0}
    for name in ("slurm", "tpu"):
        missing = gpu_rules - zeroed_gpu_rules(name)
        assert not missing, f"profiles/{name}: add `gpu: 0` under set-resources for {sorted(missing)}"
    # and the lists agree with the GPU profile's
    assert zeroed_gpu_rules("slurm") == zeroed_gpu_rules("tpu") == set(profile_rules("gpu"))


def test_numpy_engine_shards_ask_for_no_accelerator(tmp_path, declared):
    """With the default engine (numpy) the MTL shards declare no GPU / TPU; with tensorflow they do."""
    assert declared["mtl_train_shard"] == (1, 1)
    shards = [j for j in dry_run_jobs(write_tiny_workdir(tmp_path)) if j["rule"] == "mtl_train_shard"]
    assert shards and all(num(j, "gpu") == 0 and num(j, "tpu") == 0 for j in shards), shards


def test_slurm_profile_cpu_only(tiny):
    env = {"SCFACTOR_CPU_PARTITION": "short", "SCFACTOR_SLURM_ACCOUNT": "lab42"}
    for job in dry_run_jobs(tiny, "--profile", profile("slurm"), env=env):
        if job["rule"] == "all":
            continue
        r = job["resources"]
        assert r["slurm_partition"] == "short" and r["slurm_account"] == "lab42", job
        assert num(job, "gpu") == 0 and num(job, "tpu") == 0, job     # no --gpus on a CPU partition
        assert int(r["mem_mb"]) > 0 and int(r["runtime"]) > 0, job


def test_slurm_profile_defaults_without_environment(tiny, monkeypatch):
    for name in ("SCFACTOR_CPU_PARTITION", "SCFACTOR_SLURM_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    jobs = [j for j in dry_run_jobs(tiny, "--profile", profile("slurm")) if j["rule"] != "all"]
    assert {j["resources"]["slurm_partition"] for j in jobs} == {"cpu"}
    assert {j["resources"]["slurm_account"] for j in jobs} == {""}      # empty: the plugin guesses or omits -A


def test_gpu_profile_places_every_gpu_rule(tiny, declared):
    listed = set(profile_rules("gpu"))
    gpu_rules = {rule for rule, (gpu, _) in declared.items() if gpu > 0}
    assert gpu_rules <= listed, f"rules declaring gpu missing from profiles/gpu set-resources: {gpu_rules - listed}"
    env = {"SCFACTOR_GPU_PARTITION": "a100", "SCFACTOR_CPU_PARTITION": "cpu"}
    for job in dry_run_jobs(tiny, "--profile", profile("gpu"), env=env):
        if job["rule"] == "all":
            continue
        part = job["resources"]["slurm_partition"]
        if job["rule"] in listed:   # GPU-capable (grn with `device: cpu` declares gpu=0 and still lands here)
            assert part == "a100" and num(job, "gpu") == declared[job["rule"]][0], job
        else:
            assert part == "cpu" and num(job, "gpu") == 0, job
        assert num(job, "tpu") == 0, job


def test_tpu_profile_places_every_tpu_rule(tiny, declared):
    listed = set(profile_rules("tpu"))
    tpu_rules = {rule for rule, (_, tpu) in declared.items() if tpu > 0}
    assert tpu_rules <= listed, f"rules declaring tpu missing from profiles/tpu set-resources: {tpu_rules - listed}"
    for job in dry_run_jobs(tiny, "--profile", profile("tpu"), env={"SCFACTOR_TPU_PARTITION": "v5e"}):
        if job["rule"] == "all":
            continue
        part = job["resources"]["slurm_partition"]
        assert num(job, "gpu") == 0, job
        if job["rule"] in tpu_rules:
            assert part == "v5e" and num(job, "tpu") == 1 and "exclusive" in job["resources"]["slurm_extra"], job
        else:
            assert part == "cpu", job


def test_profiles_name_only_known_kinds_of_rules():
    """Profiles may list rules other branches add; every listed rule must be GPU / TPU capable by design."""
    assert set(profile_rules("tpu")) <= set(profile_rules("gpu"))
    for name in ("slurm", "gpu", "tpu"):
        cfg = yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())
        assert cfg["executor"] == "slurm" and cfg["slurm-status-command"] == "squeue"
        assert "slurm-array-jobs" not in cfg      # unreliable in plugin 2.8 (upstream #447)
        assert int(cfg["jobs"]) <= 500 and "max-jobs-per-timespan" in cfg


def test_local_profile_respects_gpu_count(tiny, declared):
    gpu_rules = {rule for rule, (gpu, _) in declared.items() if gpu > 0}
    no_gpu = dry_run_jobs(tiny, "--profile", profile("local"))
    one_gpu = dry_run_jobs(tiny, "--profile", profile("local"), "--resources", "gpu=1")
    for job in no_gpu:      # the profile declares gpu: 0 -> GPU rules are scaled down to the CPU
        assert num(job, "gpu") == 0, job
    for job in one_gpu:
        assert num(job, "gpu") == (1 if job["rule"] in gpu_rules else 0), job


def test_rules_ask_for_memory_by_their_inputs_cells(tmp_path):
    """Dry run of the tiny config with a 200,000-cell preprocessed pbmc3k in place: the NB-mixture fit and the
    Leiden baseline on it ask for their base plus their slope x 200; rules whose input is not made yet ask for
    the base."""
    from core.test_requests import write_cells
    wd = write_tiny_workdir(tmp_path / "wd")
    write_cells(wd / "results" / "preprocess" / "pbmc3k.h5ad", 200_000)
    jobs = dry_run_jobs(wd)
    by_rule = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(num(job, "mem_mb"))
    assert 4000 + 7 * 200 in by_rule["nbmix"] and 4000 in by_rule["nbmix"]          # pbmc3k; the simulation
    assert 4000 + 15 * 200 in by_rule["nbmix_leiden"] and 4000 in by_rule["nbmix_leiden"]
    assert set(by_rule["integrate"]) == {2000}                    # tiny config's integrate.mem_mb; inputs not made


# ------------------------------------------------------------------------------------------------
# memory guard

def test_granted_memory_from_slurm_variables():
    assert granted_memory_mb({"SLURM_MEM_PER_NODE": "4000"}) == 4000
    assert granted_memory_mb({"SLURM_MEM_PER_NODE": "4G"}) == 4096
    assert granted_memory_mb({"SLURM_MEM_PER_CPU": "1000", "SLURM_CPUS_ON_NODE": "3"}) == 3000
    assert granted_memory_mb({}) is None
    # inside the plugin's srun step only SLURM_JOB_ID is left: ask the controller
    assert granted_memory_mb({"SLURM_JOB_ID": "17"}, query=lambda job: 2500 if job == "17" else None) == 2500


def test_scontrol_output_parsed(monkeypatch):
    class Done:
        stdout = "JobId=5 JobName=x NumCPUs=2 MinMemoryCPU=1500M MinTmpDiskNode=0"

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Done())
    assert cluster._scontrol_memory_mb("5") == 3000
    Done.stdout = "JobId=5 NumCPUs=2 MinMemoryNode=8G Features=(null)"
    assert cluster._scontrol_memory_mb("5") == 8192


def test_requirement_parsing():
    assert required_memory_mb("preprocess", {}) is None
    assert required_memory_mb("preprocess", {"SCFACTOR_MIN_MEM_MB": "6000"}) == 6000
    env = {"SCFACTOR_MIN_MEM_MB": "preprocess=6000, train_shard=2G"}
    assert required_memory_mb("train_shard", env) == 2048
    assert required_memory_mb("preprocess", env) == 6000
    assert required_memory_mb("densify", env) is None
    with pytest.raises(ResourceError, match="SCFACTOR_MIN_MEM_MB"):
        required_memory_mb("x", {"SCFACTOR_MIN_MEM_MB": "lots"})
    with pytest.raises(ResourceError, match="SCFACTOR_MIN_MEM_MB"):
        required_memory_mb("x", {"SCFACTOR_MIN_MEM_MB": "=5"})


def test_check_memory():
    env = {"SLURM_MEM_PER_NODE": "4000", "SLURM_JOB_ID": "9", "SCFACTOR_MIN_MEM_MB": "6000"}
    with pytest.raises(ResourceError, match="job 9 was granted 4000 MB but this step needs 6000 MB"):
        check_memory("preprocess", env)
    assert check_memory("preprocess", {**env, "SLURM_MEM_PER_NODE": "8000"}) == (8000, 6000)
    assert check_memory("preprocess", {"SCFACTOR_MIN_MEM_MB": "6000"}) == (None, 6000)   # not in a job


def test_script_fails_fast_with_one_line(tmp_path, monkeypatch):
    """Every step goes through cli.run: too little memory -> exit 2, one error line, no output."""
    from conftest import assert_clean_failure, run_cli
    from scfactor.core.steps import verify_resources
    out = tmp_path / "ok"
    for k, v in {"SLURM_MEM_PER_NODE": "500", "SLURM_JOB_ID": "3",
                 "SCFACTOR_MIN_MEM_MB": "verify_resources=1000"}.items():
        monkeypatch.setenv(k, v)
    args = ("--sums", REPO / "resources" / "SHA256SUMS", "--output", out)
    proc = run_cli(verify_resources, *args)
    assert_clean_failure(proc, mentions="granted 500 MB but this step needs 1000 MB", outputs=[out])
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "1000")
    proc = run_cli(verify_resources, *args)
    assert proc.returncode == 0 and out.exists(), proc.stderr


def test_result_comparison_is_element_wise():
    """The helper that compares two runs' results: run-time keys ignored (and only those), arrays compared
    element by element (a large array differing in one element is caught; numpy's text would truncate it)."""
    import numpy as np

    from cluster.slurm import IGNORED_UNS_KEYS, values_equal
    a = np.zeros(10_000)
    b = a.copy()
    b[5000] = 1e-9
    assert not values_equal({"x": a}, {"x": b})
    assert values_equal({"x": a, "seconds": 1.0}, {"x": a.copy(), "seconds": 2.0})
    assert not values_equal({"x": a, "loss": 1.0}, {"x": a, "loss": 2.0})
    assert values_equal(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))
    assert not values_equal(np.array(["a", None], dtype=object), np.array(["a", "b"], dtype=object))
    assert IGNORED_UNS_KEYS == {"seconds", "cpu_seconds", "train_seconds", "samples_per_s"}
