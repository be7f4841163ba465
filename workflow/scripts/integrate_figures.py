#!/usr/bin/env python
"""Figures of the integrate step: UMAPs (batch / cluster) per source side by side, and metric bars.

Each --run is SOURCE=INTEGRATED.h5ad and each --metrics SOURCE=METRICS.tsv (same sources).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli, io  # noqa: E402
from scfactor.core.errors import InputError, ScfactorError  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="dataset name for titles")
    p.add_argument("--run", nargs="+", required=True, help="SOURCE=integrated.h5ad")
    p.add_argument("--metrics", nargs="+", required=True, help="SOURCE=metrics.tsv")
    p.add_argument("--umap", nargs="+", required=True, help="UMAP figure path(s) (.png / .pdf)")
    p.add_argument("--bars", nargs="+", required=True, help="metrics figure path(s) (.png / .pdf)")
    return p


def _pairs(items, what):
    out = {}
    for it in items:
        if "=" not in it:
            raise ScfactorError(f"--{what} expects SOURCE=PATH, got {it!r}")
        k, v = it.split("=", 1)
        out[k] = v
    return out


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    import matplotlib
    matplotlib.use("Agg")
    from scfactor import integrate_plots
    runs = _pairs(args.run, "run")
    mets = _pairs(args.metrics, "metrics")
    if set(runs) != set(mets):
        raise ScfactorError("--run and --metrics must name the same sources")
    adatas = {}
    for src, path in runs.items():
        a = io.read_h5ad(path)
        for key in ("X_umap",):
            if key not in a.obsm:
                raise InputError(path, f"has no obsm[{key!r}]; run the integrate step")
        for key in ("batch", "leiden"):
            if key not in a.obs:
                raise InputError(path, f"has no obs[{key!r}]; run the integrate step")
        adatas[src] = a
    tables = {}
    for src, path in mets.items():
        t = io.read_table(path)
        io.require_columns(t, ["metric", "batch", "value", "n_cells"], path, "metrics table")
        tables[src] = t
    fig = integrate_plots.umap_figure(adatas, args.dataset)
    figs = [(fig, p) for p in args.umap]
    bars = integrate_plots.metrics_figure({s: tables[s] for s in adatas}, args.dataset)
    figs += [(bars, p) for p in args.bars]
    for f, p in figs:  # save each figure to all its paths; close after the last
        with io.atomic_output(p) as tmp:
            f.savefig(tmp, dpi=150, bbox_inches="tight", format=Path(p).suffix.lstrip("."))
    import matplotlib.pyplot as plt
    plt.close("all")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
