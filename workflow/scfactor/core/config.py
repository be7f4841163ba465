"""Checks of the workflow's config that JSON Schema cannot make, run before any job (``common.smk``).

- Names that become wildcards, file names or shell words (data sets, runs, samples, batches, ...) must
  match `NAME`: letters, digits, ``.``, ``_``, ``-``, starting with a letter or digit.
- Integer keys must not be written as whole-number floats (``k: 4.0``), which JSON Schema accepts.

`validate_config` runs every check the workflow makes at parse time (schemas, defaults, integers, names),
in-process: ``common.smk`` calls it once, and tests call it without starting Snakemake.
"""

from __future__ import annotations

import copy
import re

from .options import SCHEMAS, integer_floats, load_schema

#: the pattern of every name used in a path or wildcard (also the wildcard constraint)
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_NAME_RE = re.compile(rf"^{NAME}$")


class ConfigError(ValueError):
    """A config value that would run wrong or unsafely; the message names the key."""


def check_name(where: str, name) -> str:
    """Return ``name`` or raise `ConfigError` when it is not a safe name (see `NAME`)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"config key {where}: {name!r} is not a valid name (use letters, digits, '.', '_', '-', "
                          "starting with a letter or digit)")
    return name


def check_names(where: str, names) -> list:
    """`check_name` on each of ``names`` (keys of a map or items of a list); returns them as a list."""
    return [check_name(f"{where}.{n}" if isinstance(n, str) else where, n) for n in names]


def check_integers(values: dict, schema: str, where: str) -> None:
    """Raise `ConfigError` for whole-number floats where schema ``schema`` wants integers."""
    bad = integer_floats(values, load_schema(schema), where)
    if bad:
        raise ConfigError(f"config key {bad[0]}: an integer is required, not a number with a decimal point"
                          + (f" (also {', '.join(bad[1:])})" if len(bad) > 1 else ""))


def _walk_names(values, node: dict, where: str) -> None:
    """Check every name in ``values``: keys of maps of entries, and strings whose schema says ``format: name``."""
    if node.get("format") == "name" and isinstance(values, str):
        check_name(where, values)
    elif isinstance(values, dict):
        extra = node.get("additionalProperties")
        props = node.get("properties", {})
        for key, value in values.items():
            if key in props:
                _walk_names(value, props[key], f"{where}.{key}" if where else key)
            elif isinstance(extra, dict):
                check_name(f"{where}.{key}" if where else key, key)
                _walk_names(value, extra, f"{where}.{key}" if where else key)
    elif isinstance(values, list) and isinstance(node.get("items"), dict):
        for i, value in enumerate(values):
            _walk_names(value, node["items"], f"{where}[{i}]")


def fill_defaults(values, node: dict):
    """Set the schema's defaults for absent keys, recursively (objects and the entries of maps)."""
    if not isinstance(values, dict):
        return values
    for key, sub in node.get("properties", {}).items():
        if key not in values and "default" in sub:
            values[key] = copy.deepcopy(sub["default"])
        if key in values:
            fill_defaults(values[key], sub)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        for key in values:
            if key not in node.get("properties", {}):
                fill_defaults(values[key], extra)
    return values


def _one_line(error) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    return f"config key {where}: {error.message}" if where else f"config: {error.message}"


def validate_section(values, schema: str, where: str = ""):
    """Validate ``values`` against ``workflow/schemas/<schema>.schema.yaml``; fill defaults; check integers and
    names. Raises `ConfigError` with one line naming the first offending key."""
    import jsonschema

    node = load_schema(schema)
    validator = jsonschema.Draft202012Validator(node)
    errors = sorted(validator.iter_errors(values), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        msg = _one_line(err)
        raise ConfigError(msg.replace("config key ", f"config key {where}." if where else "config key ", 1)
                          if where and msg.startswith("config key ") else
                          (f"config section {where}: {err.message}" if where else msg))
    fill_defaults(values, node)
    check_integers(values, schema, where)
    _walk_names(values, node, where)
    return values


def sections() -> dict[str, str]:
    """Config sections validated by their own schema file: ``{"nbmix": "nbmix", "simulate.nbmix": "simulate_nbmix"}``."""
    out = {}
    for path in sorted(SCHEMAS.glob("*.schema.yaml")):
        stem = path.name.removesuffix(".schema.yaml")
        if stem != "config":
            out[stem.replace("simulate_", "simulate.", 1) if stem.startswith("simulate_") else stem] = stem
    return out


def validate_config(config: dict) -> dict:
    """The whole config checked as the workflow checks it before any job: the top-level schema, every
    section's schema (defaults filled in place), integer keys and names. Returns ``config``."""
    validate_section(config, "config")
    for key, schema in sections().items():
        node = config
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if node.get(parts[-1]) is None:
            node[parts[-1]] = {}
        validate_section(node[parts[-1]], schema, key)
    return config
