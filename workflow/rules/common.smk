# Shared helpers for all .smk files: config validation, names, paths, commands, logs, resources.
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
from scfactor.core.config import NAME, validate_config  # noqa: E402

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


def resource_inputs(path):
    """Inputs of a job reading `path`: the file, plus the checksum marker when it is bundled."""
    p = os.path.normpath(str(path))
    res = os.path.normpath(config["resources_dir"])
    if p == res or p.startswith(res + os.sep):
        return [str(path), RESOURCES_OK]
    return [str(path)]

