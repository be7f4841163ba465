#!/usr/bin/env python
"""Tables for `snakemake --report`: the run's flattened config, or a copy of a benchmark table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from scfactor import cli, io  # noqa: E402
from scfactor.errors import InputError  # noqa: E402


def flatten(node, prefix=""):
    """Yield (dotted key, JSON value) pairs of a nested config, lists kept whole."""
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, json.dumps(node)


def main(argv=None):
    p = cli.parser(__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("config", help="flatten a JSON config to key/value rows")
    c.add_argument("--config-json", required=True)
    c.add_argument("--output", required=True)
    t = sub.add_parser("table", help="validate and copy a TSV table")
    t.add_argument("--input", required=True)
    t.add_argument("--output", required=True)
    args = p.parse_args(argv)
    cli.setup_logging(args.verbose)
    if args.what == "config":
        try:
            cfg = json.loads(args.config_json)
        except json.JSONDecodeError as exc:
            raise InputError("--config-json", f"not valid JSON ({exc.msg})") from None
        io.write_table(pd.DataFrame(list(flatten(cfg)), columns=["key", "value"]), args.output)
    else:
        df = io.read_table(args.input, sep="\t")
        if df.empty:
            raise InputError(args.input, "benchmark table has no rows")
        io.write_table(df, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
