#!/usr/bin/env python
"""Collect the metrics of all GRN transitions into one wide table (transition x model:metric)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from scfactor.core import cli, io  # noqa: E402
from scfactor.core.errors import InputError  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--metrics", nargs="+", required=True, help="metrics .tsv files written by grn.py")
    p.add_argument("--output", required=True, help="summary .tsv")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    tabs = []
    for path in args.metrics:
        df = io.read_table(path)
        io.require_columns(df, ["transition", "model", "metric", "value"], path, "GRN metrics table")
        tabs.append(df)
    long = pd.concat(tabs, ignore_index=True)
    long["column"] = long["model"] + ":" + long["metric"]
    if long.duplicated(["transition", "column"]).any():
        raise InputError(args.metrics[0], "the same transition occurs in more than one metrics file")
    wide = long.pivot(index="transition", columns="column", values="value")
    wide = wide[list(dict.fromkeys(long["column"]))].reset_index()
    io.write_table(wide, args.output)
    cli.LOG.info("wrote %s (%d transitions)", args.output, len(wide))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
