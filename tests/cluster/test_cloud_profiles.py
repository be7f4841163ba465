"""profiles/kubernetes and its image (envs/Containerfile), read as files: the executor plugin is not installed
here (it needs a cluster), so these settings are checked against the rules and the lock file instead."""

from __future__ import annotations

import re

import yaml

from conftest import REPO

PROFILE = REPO / "profiles" / "kubernetes" / "config.yaml"


def profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def declared(resource: str) -> set[str]:
    """Rules whose `resources:` declare ``resource`` (read from workflow/rules/*.smk)."""
    rules = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", smk.read_text(), re.S | re.M):
            res = re.search(r"^    resources:\n((?:        .*\n)+)", m.group(2), re.M)
            if res and re.search(rf"^        {resource}=", res.group(1), re.M):
                rules.add(m.group(1))
    return rules


def test_rules_declaring_devices_are_found():
    assert {"densify", "mtl_train_shard", "integrate"} <= declared("gpu")
    assert declared("tpu") == {"densify", "densify_train", "mtl_train_shard"}


def test_kubernetes_profile_runs_on_object_storage():
    p = profile()
    assert p["executor"] == "kubernetes"
    assert p["default-storage-provider"] == "s3"                 # the plugin pinned in requirements.lock
    assert p["default-storage-prefix"] == "$SCFACTOR_STORAGE_PREFIX"
    assert p["container-image"] == "$SCFACTOR_IMAGE"
    assert p["configfile"] == "config/config.yaml" and (REPO / p["configfile"]).exists()
    assert p["retries"] >= 1                                      # an evicted pod is resubmitted (and resumes)
    lock = (REPO / "requirements.lock").read_text()
    assert re.search(r"^snakemake-storage-plugin-s3==\S+$", lock, re.M)
    assert "shared-fs-usage" not in p                             # nothing shared between pods


def test_kubernetes_profile_places_gpu_rules_on_gpu_nodes():
    """The plugin adds the GPU request and the node pool's toleration for `gpu` + `gpu_manufacturer`, and
    fails a job that has `gpu` (even 0) without a manufacturer: every rule declaring gpu names one."""
    res = profile()["set-resources"]
    gpu_rules = declared("gpu")
    assert set(res) == gpu_rules, "profiles/kubernetes set-resources must list exactly the GPU-capable rules"
    for rule in gpu_rules:
        assert res[rule]["gpu_manufacturer"] == "'nvidia'", rule
    for rule in declared("tpu"):
        assert res[rule]["tpu"] == 0, rule                        # no TPUs on Kubernetes node pools
    assert profile()["resources"]["gpu"] >= 1


def test_container_image_is_built_from_the_lock():
    text = (REPO / "envs" / "Containerfile").read_text()
    assert re.search(r"^FROM python:3\.11", text, re.M)
    assert "COPY requirements.lock" in text
    assert re.search(r"pip install -r \S*requirements\.lock", text)
    # the GPU variant rewrites exactly the two CPU-only pins of the lock
    lock = (REPO / "requirements.lock").read_text()
    assert re.search(r"^tensorflow[-_]cpu==", lock, re.M) and re.search(r"^torch==[0-9.]+\+cpu$", lock, re.M)
