# Shared helpers for all .smk files: config validation, paths, resources.
import json
import os
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
from scfactor.smk.preprocess import preprocess_args  # noqa: E402

REPO = Path(workflow.basedir)
SCRIPTS = REPO / "workflow" / "scripts"
SCHEMAS = REPO / "workflow" / "schemas"

validate(config, str(SCHEMAS / "config.schema.yaml"), set_default=True)

RESULTS = config["results"]
LOGS = config["logs"]

# dataset paths may name the results folder as {results} (simulator outputs follow `results` overrides)
for _entry in config["datasets"].values():
    _entry["path"] = _entry["path"].replace("{results}", RESULTS)

# Each .smk file registers its final outputs here; `rule all` asks for all of them.
TARGETS = []


def validate_section(key, schema_file):
    """Validate (and fill defaults of) one config section against workflow/schemas/<schema_file>.

    `key` is a dotted path such as "nbmix" or "simulate.nbmix"; a missing section becomes {} and
    gets the schema's defaults. Errors name the section, then Snakemake names the offending key.
    """
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node.setdefault(parts[-1], {})
    try:
        validate(node[parts[-1]], str(SCHEMAS / schema_file), set_default=True)
    except Exception as exc:
        raise ValueError(f"invalid config section '{key}': {exc}") from None


def script(name):
    """Absolute path of workflow/scripts/<name> (works with --directory)."""
    return str(SCRIPTS / name)


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
