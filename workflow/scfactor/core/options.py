"""Options defined once, in the JSON schemas of ``workflow/schemas``, and derived everywhere else.

A schema property (type, range, enum, default, description) becomes, without being written again:

- a command-line option of a script (`Step.add_arguments`: flag, type, choices, default, help and a
  range check that fails with one line);
- the command line a rule passes to that script (`Step.argv`, built from the validated config);
- a typed, frozen options object the library takes (`Step.Options`, a dataclass whose defaults are
  the schema's; `Step.defaults()`, `Step.from_args(args)`).

A step's options are one or more `Group`s: a schema and the dotted path inside it whose properties
are taken (``"leiden"``, ``"runs.*"`` for the entries of a map). Nested objects with fixed properties
are flattened (``amortized.epochs`` -> ``--amortized-epochs``, field ``amortized_epochs``); maps
(objects keyed by user-chosen names) and arrays of objects are not options of a script.

Options whose values name files (schema ``format: path``, or ``format: gene-set`` when the value is no
keyword of `GENE_SET_KEYWORDS`) are listed by `Step.files`; a rule declares them as inputs (so that object
storage stages them) and `Step.argv` writes the job's staged copies in their place.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import keyword
import shlex
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
#: keys that are resources of the rule (passed as ``--threads {threads}``), not options of the science
RESERVED = frozenset({"threads"})
#: how a ``null`` value is written on a command line
NULL = "none"
_MISSING = dataclasses.MISSING
_PYTYPE = {"integer": int, "number": float, "string": str, "boolean": bool}
#: values of a ``format: gene-set`` option that select genes by a flag, not from a file of names
GENE_SET_KEYWORDS = ("all", "liger", "hvg")


@functools.lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The schema ``workflow/schemas/<name>.schema.yaml`` as a dict (cached).

    Parsed with libyaml when PyYAML has it (the same dicts as ``yaml.safe_load``, several times faster: every
    step process parses its schemas at start-up)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((SCHEMAS / f"{name}.schema.yaml").read_text(), Loader=loader)


def _types(node: dict) -> tuple[str, ...]:
    t = node.get("type", "string")
    return tuple(t) if isinstance(t, list) else (t,)


def schema_at(schema: dict, at: str) -> dict:
    """The sub-schema at dotted path ``at`` (``*`` steps into a map's ``additionalProperties``)."""
    node = schema
    for part in filter(None, at.split(".")):
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
    return node


@dataclasses.dataclass(frozen=True)
class Option:
    """One schema property as a command-line option."""

    key: tuple[str, ...]
    node: dict = dataclasses.field(repr=False, compare=False)
    required: bool = False

    @property
    def dest(self) -> str:
        """Python name: the key path joined by ``_`` (a Python keyword gets a trailing ``_``: ``lambda_``)."""
        name = "_".join(self.key)
        return name + "_" if keyword.iskeyword(name) else name

    @property
    def flag(self) -> str:
        """Command-line flag: ``--`` + the key path joined by dashes (``--lambda`` for key ``lambda``)."""
        return "--" + "_".join(self.key).replace("_", "-")

    @property
    def types(self) -> tuple[str, ...]:
        """JSON types the option admits (``null`` included when nullable)."""
        return _types(self.node)

    @property
    def nullable(self) -> bool:
        """Whether ``null`` is an allowed value."""
        return "null" in self.types

    @property
    def kind(self) -> str:
        """The non-null JSON type: integer, number, string, boolean or array."""
        kinds = [t for t in self.types if t != "null"]
        return "number" if set(kinds) == {"integer", "number"} else kinds[0]

    @property
    def default(self) -> Any:
        """The schema default (`dataclasses.MISSING` for a required option)."""
        if "default" in self.node:
            d = self.node["default"]
            return tuple(d) if isinstance(d, list) else d
        return _MISSING if self.required else None

    @property
    def item_kind(self) -> str:
        """JSON type of an array's items."""
        return _types(self.node.get("items", {}))[0]

    @property
    def pytype(self):
        """Python type of the value (tuple for arrays)."""
        t = tuple if self.kind == "array" else _PYTYPE[self.kind]
        return t | None if self.nullable else t

    @property
    def help(self) -> str:
        """The schema description on one line, with its range."""
        text = " ".join(str(self.node.get("description", "")).split())
        rng = describe_range(self.node)
        return f"{text} [{rng}]" if rng else text

    def convert(self, text: str):
        """Parse and range-check one command-line value (argparse ``type=``)."""
        if self.nullable and text.lower() in (NULL, "null"):
            return None
        kind = self.item_kind if self.kind == "array" else self.kind
        node = self.node.get("items", {}) if self.kind == "array" else self.node
        try:
            value = _PYTYPE[kind](text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an' if kind == 'integer' else 'a'} {kind}") from None
        problem = out_of_range(value, node)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    def file(self, value) -> str | None:
        """The file ``value`` names, when this option's values are paths (schema ``format: path``, or
        ``format: gene-set`` and not a keyword); None otherwise."""
        fmt = self.node.get("format")
        if not isinstance(value, str) or fmt not in ("path", "gene-set"):
            return None
        return None if fmt == "gene-set" and value in GENE_SET_KEYWORDS else value

    def format(self, value) -> list[str]:
        """The command-line words for ``value`` ([] when it is the unset null)."""
        if self.kind == "boolean":
            return [self.flag if value else "--no-" + self.flag[2:]]
        if value is None:
            return [self.flag, NULL] if self.default is not None else []
        if self.kind == "array":
            return [self.flag, *map(_word, value)] if len(value) else []
        return [self.flag, _word(value)]


def _word(value) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def describe_range(node: dict) -> str:
    """The schema's range as text (``>= 1``, ``in (0, 1]``), or ''."""
    lo, hi = node.get("minimum"), node.get("maximum")
    xlo, xhi = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    low = f"({xlo}" if xlo is not None else (f"[{lo}" if lo is not None else None)
    high = f"{xhi})" if xhi is not None else (f"{hi}]" if hi is not None else None)
    if low and high:
        return f"in {low}, {high}"
    if low:
        return (">= " if low[0] == "[" else "> ") + low[1:]
    if high:
        return ("<= " if high[-1] == "]" else "< ") + high[:-1]
    return ""


def out_of_range(value, node: dict) -> str | None:
    """Why ``value`` violates the schema node's range or enum, or None."""
    if "enum" in node and value not in node["enum"]:
        return f"{value!r} is not one of {', '.join(map(str, node['enum']))}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = node.get("minimum"), node.get("maximum")
        xlo, xhi = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
        if (lo is not None and value < lo) or (hi is not None and value > hi) \
                or (xlo is not None and value <= xlo) or (xhi is not None and value >= xhi):
            return f"{value} is out of range (must be {describe_range(node)})"
    return None


def _is_map(node: dict) -> bool:
    return "object" in _types(node) and "properties" not in node


def _flatten(node: dict, prefix: tuple, include, exclude) -> Iterable[Option]:
    required = set(node.get("required", ()))
    for key, sub in node.get("properties", {}).items():
        path = prefix + (key,)
        dotted = ".".join(path)
        if key in RESERVED or dotted in exclude or (include is not None and not _included(dotted, include)):
            continue
        if "object" in _types(sub):
            if not _is_map(sub):
                yield from _flatten(sub, path, include, exclude)
            continue
        if "array" in _types(sub) and "object" in _types(sub.get("items", {})):
            continue
        yield Option(path, sub, required=key in required and "default" not in sub)


def _included(dotted: str, include) -> bool:
    return any(dotted == i or dotted.startswith(i + ".") for i in include)


@dataclasses.dataclass(frozen=True)
class Group:
    """The options found at ``at`` in schema ``schema`` (``include`` / ``exclude`` dotted keys)."""

    schema: str
    at: str = ""
    include: tuple | None = None
    exclude: tuple = ()

    def options(self) -> list[Option]:
        """The flattened options of this group."""
        node = schema_at(load_schema(self.schema), self.at)
        return list(_flatten(node, (), self.include, set(self.exclude)))

    def value(self, values: dict, opt: Option):
        """The value of ``opt`` in the config dict ``values`` (its default when absent)."""
        node = values
        for part in opt.key:
            if not isinstance(node, dict) or part not in node:
                return opt.default if opt.default is not _MISSING else None
            node = node[part]
        return node


class Step:
    """The options of one script, derived from one or more schema `Group`s."""

    def __init__(self, name: str, *groups: Group):
        self.name = name
        self.groups = groups
        self._by_group = [g.options() for g in groups]
        self.options = [o for opts in self._by_group for o in opts]
        dests = [o.dest for o in self.options]
        dup = sorted({d for d in dests if dests.count(d) > 1})
        if dup:
            raise ValueError(f"step {name}: options defined twice: {', '.join(dup)}")
        fields = sorted(((o.dest, o.pytype, dataclasses.field(default=o.default)) for o in self.options),
                        key=lambda f: f[2].default is not _MISSING)
        self.Options = dataclasses.make_dataclass(f"{name.title().replace('_', '')}Options", fields, frozen=True)
        self.Options.__doc__ = f"Settings of step {name} (fields and defaults from the schema)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add every option to ``parser`` (flag, type, range check, choices, default, help)."""
        for o in self.options:
            kw = dict(dest=o.dest, help=o.help.replace("%", "%%"))
            if o.kind == "boolean":
                kw.update(action=argparse.BooleanOptionalAction)
            else:
                kw.update(type=o.convert, metavar=o.kind.upper() if o.kind != "array" else o.item_kind.upper())
                enum = o.node.get("items", {}).get("enum") if o.kind == "array" else o.node.get("enum")
                if enum:
                    kw["metavar"] = "{" + ",".join(map(str, enum)) + "}"
                if o.kind == "array":
                    kw["nargs"] = "*"
            if o.required:
                kw["required"] = True
            else:
                kw["default"] = o.default
            parser.add_argument(o.flag, **kw)

    def from_args(self, args: argparse.Namespace):
        """The typed options object of parsed ``args``."""
        values = {}
        for o in self.options:
            v = getattr(args, o.dest)
            values[o.dest] = tuple(v) if isinstance(v, list) else v
        return self.Options(**values)

    def defaults(self, **overrides):
        """The options object with the schema defaults (``overrides`` by field name)."""
        return self.Options(**overrides)

    def _values(self, values: tuple) -> Iterable[tuple[Option, Any]]:
        if len(values) != len(self.groups):
            raise ValueError(f"step {self.name}: {len(self.groups)} config dicts expected, got {len(values)}")
        for group, opts, vals in zip(self.groups, self._by_group, values):
            for o in opts:
                yield o, group.value(vals, o)

    def files(self, *values: dict) -> list[str]:
        """The files named by file-valued options (`Option.file`) in config dicts, one per group: inputs of
        the rule running this step."""
        return [f for o, v in self._values(values) if (f := o.file(v)) is not None]

    def argv(self, *values: dict, staged: dict | None = None) -> list[str]:
        """Command-line words from config dicts, one per group (each read at that group's ``at``).
        ``staged``: {file named in the config: the path the job reads it from} for file-valued options."""
        words: list[str] = []
        for o, v in self._values(values):
            f = o.file(v)
            words += o.format(staged.get(f, f) if staged and f is not None else v)
        return words

    def command(self, *values: dict, staged: dict | None = None) -> str:
        """`argv` as one shell-quoted string (for a rule's ``params``)."""
        return shlex.join(self.argv(*values, staged=staged))


def integer_floats(values, node: dict, where: str) -> list[str]:
    """Dotted keys of ``values`` where the schema wants an integer but the config has a float (``k: 4.0``).

    JSON Schema counts 4.0 as an integer; a script's ``int`` option does not, so such values are rejected
    at validation time instead of by a job after its upstream jobs ran.
    """
    bad = []
    types = _types(node)
    if isinstance(values, float) and "integer" in types and "number" not in types:
        bad.append(where)
    elif isinstance(values, dict):
        for k, v in values.items():
            sub = node.get("properties", {}).get(k)
            if sub is None and isinstance(node.get("additionalProperties"), dict):
                sub = node["additionalProperties"]
            if sub is not None:
                bad += integer_floats(v, sub, f"{where}.{k}" if where else str(k))
    elif isinstance(values, list) and isinstance(node.get("items"), dict):
        for i, v in enumerate(values):
            bad += integer_floats(v, node["items"], f"{where}[{i}]")
    return bad


def check_argv(step: Step, words: Sequence[str]) -> None:
    """Parse ``words`` with the step's options (tests: a rule's command line is valid for its script)."""
    p = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    step.add_arguments(p)
    p.parse_args(list(words))
