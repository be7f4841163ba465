#!/usr/bin/env python
"""NB mixture: would a short screening EM have kept the restart that wins? Read from finished fits' traces.

    python benchmarks/nbmix/restart_screen.py --trace results/nbmix/kang/nbmix.trace.tsv \
        results/nbmix/pbmc3k/nbmix.trace.tsv --rounds 5 10 15 20 --margin 1.0

For each trace (the ``nbmix.trace.tsv`` a fit writes: one row per restart and EM round) and each screening length
R: the log-likelihood per cell of every restart after at most R rounds, the rank there of the restart that is best
at the end, and which restarts are within ``--margin`` nats per cell of the leader after R rounds (those a screen
would continue). Also the EM rounds the fit ran and those a screen would have run (R per restart, plus the
remaining rounds of the kept ones). No refitting: the numbers are the fits' own. Writes ``<out>.tsv`` and
``<out>.md``, the command on their first line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from results_file import command_line, write_results  # noqa: E402


def screen_rows(trace: pd.DataFrame, name: str, cells: int, rounds: list[int], margin: float):
    """One row per screening length: the final best restart's rank, the restarts a screen keeps, rounds run."""
    final = trace.groupby("restart").loglik.last() / cells
    best = final.idxmax()
    total = trace.groupby("restart")["round"].max()
    for r in rounds:
        at = trace[trace["round"] <= r].groupby("restart").loglik.last() / cells
        kept = at.index[(at.max() - at) <= margin]
        screened = int(total.clip(upper=r).sum() + (total[kept] - r).clip(lower=0).sum())
        yield {"fit": name, "cells": cells, "screen_rounds": r, "final_best": int(best),
               "final_best_rank_at_screen": int(at.rank(ascending=False)[best]),
               "final_best_ll_per_cell": final[best], "kept": " ".join(map(str, kept)),
               "best_kept": bool(best in kept), "rounds_run": int(total.sum()), "rounds_screened": screened}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", nargs="+", required=True, help="nbmix.trace.tsv files of finished fits")
    ap.add_argument("--rounds", nargs="+", type=int, default=[5, 10, 15, 20])
    ap.add_argument("--margin", type=float, default=1.0, help="nats per cell behind the leader a screen keeps")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "nbmix_restart_screen"))
    a = ap.parse_args(argv)
    rows = []
    for path in a.trace:
        metrics = pd.read_csv(Path(path).with_name("nbmix.metrics.tsv"), sep="\t")
        rows += screen_rows(pd.read_csv(path, sep="\t"), Path(path).parent.name, int(metrics.n_cells.iloc[0]),
                            a.rounds, a.margin)
    table = pd.DataFrame(rows)
    intro = (f"# NB mixture: screening restarts after R rounds (margin {a.margin} nats per cell), from the fits' "
             "traces\n\n`kept`: the restarts within the margin of the leader after R rounds; `rounds_screened`: "
             "the EM rounds a screen would have run (R per restart plus the rest of the kept ones) against "
             "`rounds_run`, those the fit ran.")
    write_results(a.out, command_line(__file__), table, intro, floatfmt=".3f")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
