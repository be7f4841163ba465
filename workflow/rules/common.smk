# Shared helpers for all .smk files: config validation, names, paths, commands, logs, resources.
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
from scfactor.core.config import NAME, validate_config  # noqa: E402
from scfactor.core.requests import scaled_request  # noqa: E402

REPO = Path(workflow.basedir)
SCRIPTS = REPO / "workflow" / "scripts"
SCHEMAS = REPO / "workflow" / "schemas"

# the interpreter of the environment running Snakemake, or the rule's conda env's own `python`
PYTHON = (
    "python"
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    else sys.executable
)

# every check before any job runs, in one place (also callable from tests): the top-level and section
# schemas (defaults filled in), integer keys written as floats, names that become paths
validate_config(config)

RESULTS = config["results"]
LOGS = config["logs"]

# dataset paths may name the results folder as {results} (simulator outputs follow `results` overrides)
for _entry in config["datasets"].values():
    if _entry.get("path"):
        _entry["path"] = _entry["path"].replace("{results}", RESULTS)

# Each .smk file registers its final outputs here; `rule all` asks for all of them.
TARGETS = []

# Object storage instead of a shared file system (cloud executors; docs/cluster.md): with
# `--default-storage-provider s3 --default-storage-prefix s3://<bucket>/<run>` Snakemake stages every declared
# input and output through the bucket, so commands name only {input}/{output} paths (never config paths).
# State that must outlive a killed job (training checkpoints) is no output: the job keeps it in the bucket
# itself (scfactor.core.remote), with the endpoint and credentials given to Snakemake, exported here so
# that the job's commands see them (never on a command line).
STORAGE_PREFIX = (
    (workflow.storage_settings.default_storage_prefix or "").rstrip("/")
    if workflow.storage_settings.default_storage_provider
    else ""
)
if workflow.storage_settings.default_storage_provider == "s3":
    # existence checks before the first job: one listing of the run's prefix, not requests file by file
    from scfactor.core.s3inventory import install as install_s3_inventory  # noqa: E402

    install_s3_inventory(STORAGE_PREFIX)
    _s3 = (workflow.storage_provider_settings or {}).get("s3")
    _s3 = _s3.get_settings() if _s3 is not None else None
    for _field, _var in {"endpoint_url": "ENDPOINT_URL", "access_key": "ACCESS_KEY", "secret_key": "SECRET_KEY",
                         "token": "TOKEN", "region": "REGION"}.items():
        if _s3 is not None and getattr(_s3, _field, None):
            os.environ.setdefault(f"SNAKEMAKE_STORAGE_S3_{_var}", str(getattr(_s3, _field)))


def state_path(path):
    """Where a job keeps state that must outlive it (training checkpoints): `path` itself, or with a default
    storage provider the same path under the storage prefix (`s3://<bucket>/<run>/<path>`)."""
    return f"{STORAGE_PREFIX}/{path}" if STORAGE_PREFIX else path


def staged_dir(files):
    """The folder of the first of `files` as the job sees it (under the storage staging folder when the run
    uses object storage), for steps that take a folder whose files are declared inputs or outputs."""
    return os.path.dirname(str(files[0]))


def staged_files(files, input_files):
    """{file an option names in the config: the job's copy of it}: file-valued options (gene lists, declared
    as the rule's `option_files` input from the same list) point to the staged copy on object storage."""
    return dict(zip(files, map(str, input_files)))


def command(name):
    """The shell words that run workflow/scripts/<name> with this run's interpreter (quoted)."""
    return f"{shlex.quote(PYTHON)} {shlex.quote(str(SCRIPTS / name))}"


def log_path(name, *wildcards):
    """The one log path pattern: <logs>/<name>/<wildcard>/.../<last wildcard>.log, or <logs>/<name>.log.

    `name` is the rule's name; `wildcards` the names of its wildcards, in path order.
    """
    if not wildcards:
        return f"{LOGS}/{name}.log"
    return os.path.join(LOGS, name, *(f"{{{w}}}" for w in wildcards[:-1]), f"{{{wildcards[-1]}}}.log")


def mem_mb(base):
    """mem_mb resource that grows with the attempt: base * attempt (a retry after OOM gets more)."""
    return lambda wildcards, attempt: int(base * attempt)


def by_cells(base, per_1k_cells, key="h5ad"):
    """A mem_mb (MB) or runtime (minutes) that grows with the step's cells: base + per_1k_cells per 1000 cells
    of its input `key` (the .h5ad files it reads), times the attempt (scfactor.core.requests.scaled_request).
    The slopes are the scale benchmark's (benchmarks/results/scale*.md), rounded up."""
    return lambda wildcards, input, attempt: scaled_request(base, per_1k_cells, getattr(input, key), attempt)


def runtime_min(base):
    """runtime (minutes) that grows with the attempt."""
    return lambda wildcards, attempt: int(base * attempt)


def dataset(name):
    """The config entry of dataset `name` (KeyError-free message on a typo)."""
    if name not in config["datasets"]:
        raise ValueError(f"unknown dataset '{name}' (config datasets: {', '.join(config['datasets'])})")
    return config["datasets"][name]


def preprocessed(name):
    """Path of the preprocessed .h5ad of dataset `name`."""
    return f"{RESULTS}/preprocess/{name}.h5ad"


RESOURCES_OK = f"{RESULTS}/checks/resources.sha256.ok"

RESOURCE_SUMS = os.path.join(config["resources_dir"], "SHA256SUMS")


def listed_resources(sums):
    """The files a SHA256SUMS list names (paths beside it), read when the list is on this machine: declared
    inputs, so that they are staged too when the run keeps its inputs in object storage."""
    if not os.path.isfile(sums):
        return []
    with open(sums) as f:
        rows = [ln.partition("  ")[2].strip().removeprefix("./") for ln in f if ln.strip()]
    return [os.path.join(os.path.dirname(sums), r) for r in rows if r]


def resource_inputs(path):
    """Inputs of a job reading `path`: the file, plus the checksum marker when it is bundled."""
    p = os.path.normpath(str(path))
    res = os.path.normpath(config["resources_dir"])
    if p == res or p.startswith(res + os.sep):
        return [str(path), RESOURCES_OK]
    return [str(path)]

