"""Tables for `snakemake --report`: the run's flattened config."""

from __future__ import annotations

import json


def flatten(node, prefix=""):
    """Yield (dotted key, JSON value) pairs of a nested config, lists kept whole."""
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, json.dumps(node)
