"""Checks of the workflow's config that JSON Schema cannot make, run before any job (``common.smk``).

- Names that become wildcards, file names or shell words (data sets, runs, samples, batches, ...) must
  match `NAME`: letters, digits, ``.``, ``_``, ``-``, starting with a letter or digit.
- Integer keys must not be written as whole-number floats (``k: 4.0``), which JSON Schema accepts.
"""

from __future__ import annotations

import re

from .options import integer_floats, load_schema

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
