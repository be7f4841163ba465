"""The configuration reference (``config/README.md``) rendered from the schemas: every key, type, default."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

HEADER = """# Configuration reference

Generated from `workflow/schemas/*.schema.yaml` by `make docs`
(`python workflow/scripts/config_docs.py`); do not edit by hand. A test fails when this page and the
schemas disagree. The config is validated against these schemas before any job runs: a wrong type,
an out-of-range value or an unknown key stops Snakemake with a message naming the key.

Files: `config/config.yaml` (default run: bundled data, subsampled, minutes on a laptop),
`config/paper.yaml` (full reproduction), `tests/tiny_config.yaml` (test suite).
"""


PIPE = "\\|"  # a literal | inside a Markdown table cell


def _type(node: dict) -> str:
    t = node.get("type", "")
    t = " or ".join(t) if isinstance(t, list) else t
    if "enum" in node:
        t += " (" + " / ".join(map(str, node["enum"])) + ")"
    if node.get("format") == "name":
        t += " (a name: letters, digits, . _ -)"
    if node.get("type") == "array" and "items" in node:
        t += " of " + _type(node["items"])
    return t


def _range(node: dict) -> str:
    parts = []
    for key, sym in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"),
                     ("minItems", "items >="), ("minLength", "length >=")):
        if key in node:
            parts.append(f"{sym} {node[key]}")
    return ", ".join(parts)


def rows(node: dict, prefix: str):
    """Yield (key, type, range, default, description) for every property, depth first."""
    for key, sub in (node.get("properties") or {}).items():
        path = f"{prefix}.{key}" if prefix else key
        default = json.dumps(sub["default"]) if "default" in sub else ""
        yield path, _type(sub), _range(sub), default, " ".join(str(sub.get("description", "")).split())
        yield from rows(sub, path)
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict) and (extra.get("properties")):
            yield from rows(extra, f"{path}.<name>")


def section_of(schema_path: Path) -> str:
    """config section a schema file describes: config -> top level, simulate_x -> simulate.x, x -> x."""
    stem = schema_path.name.removesuffix(".schema.yaml")
    if stem == "config":
        return ""
    return stem.replace("simulate_", "simulate.", 1) if stem.startswith("simulate_") else stem


def render(schema_dir) -> str:
    """The whole Markdown page for all schema files in ``schema_dir``."""
    out = [HEADER]
    files = sorted(Path(schema_dir).glob("*.schema.yaml"), key=lambda p: (p.name != "config.schema.yaml", p.name))
    for f in files:
        schema = yaml.safe_load(f.read_text())
        sec = section_of(f)
        out.append(f"\n## `{sec or 'top level'}` ({f.name})\n")
        if schema.get("description"):
            out.append(" ".join(str(schema["description"]).split()) + "\n")
        out.append("\n| key | type | range | default | meaning |\n|---|---|---|---|---|")
        for key, typ, rng, default, desc in rows(schema, sec):
            cells = [f"`{key}`", typ, rng, default, desc]
            out.append("| " + " | ".join(c.replace("|", PIPE) for c in cells) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
