#!/usr/bin/env python
"""Collect NB-mixture and Leiden metrics TSVs into one table (TSV) and a table figure."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from scfactor.core import cli, io  # noqa: E402
from scfactor.models import nbmix_plots  # noqa: E402

REQUIRED = ["dataset", "method", "label_kind", "k", "n_cells", "accuracy_majority", "accuracy_hungarian",
            "nmi", "ari", "log_loss"]


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--metrics", required=True, nargs="+", help="one-row metrics TSVs")
    p.add_argument("--output", required=True, help="summary .tsv")
    p.add_argument("--figure", required=True, nargs="+", help="table figure(s) (.png/.pdf)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    frames = []
    for path in args.metrics:
        df = io.read_table(path)
        io.require_columns(df, REQUIRED, path, what="metrics table")
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)
    fig = nbmix_plots.metrics_table_figure(table)
    for path in args.figure[:-1]:
        with io.atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=Path(path).suffix.lstrip("."))
    io.write_table(table, args.output)
    io.save_figure(fig, args.figure[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
