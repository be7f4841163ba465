#!/usr/bin/env python
"""NB mixture on many cells (issue 19): the last EM's M steps on a sample of the cells against exact M steps.

    python benchmarks/nbmix/m_sample.py --sizes 200000 --m-step-cells 25000 50000 100000
    python benchmarks/nbmix/m_sample.py --sizes 30000 --m-step-cells 10000 --genes 500 --out /tmp/nbm  # a quick check

For each size N the scale benchmark's simulation (`large.py`'s ``simulate``: two batches, ``--groups`` shared
groups and one batch-specific group per batch, ``--genes`` genes) is fitted on the large-data path at the schema
defaults (the restarts on ``restart_subsample_cells`` cells, then at most ``full_max_iters`` EM rounds on all
cells), once with exact M steps over all N cells (``full_m_step_cells`` = N) and once per ``--m-step-cells``
value C < N with every M step of the last EM on a fresh sample of C cells. One thread, the fits one after the
other in this process.

Reported per fit: ARI against the planted labels and against the exact fit's partition, mean per-cell
log-likelihood and its difference to the exact fit's, rounds on all cells, rounds in which the log-likelihood of
all cells went down (possible only with sampled M steps), and the fit's CPU and wall seconds (valid timings only
on an otherwise idle machine). Writes ``<out>.tsv`` and ``<out>.md``, the command on their first line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "workflow"))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import em_kwargs  # noqa: E402
from large import add_run_options, load, simulate  # noqa: E402
from results_file import command_line, write_results  # noqa: E402


def fit_row(x, truth, k: int, seed: int, m_cells: int, exact=None) -> tuple[dict, object]:
    """Fit the large-data path with ``m_cells`` cells per M step: ``(results row, fit)``."""
    from scfactor.core.metrics import ari
    from scfactor.nbmix import model
    n = x.shape[0]
    t0, c0 = time.perf_counter(), time.process_time()
    fit = model.fit_em(x, k, seed=seed, log_every=0, **em_kwargs(k, restart_subsample_above=0,
                                                                  full_m_step_cells=m_cells))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    ll = fit.loglik / n
    nan = float("nan")
    return {"cells": n, "m_step_cells": min(m_cells, n), "ari_truth": ari(truth, fit.labels),
            "ari_vs_exact": nan if exact is None else ari(exact.labels, fit.labels), "loglik_per_cell": ll,
            "loglik_per_cell_minus_exact": nan if exact is None else ll - exact.loglik / n,
            "rounds_all_cells": fit.n_iter, "rounds_down": int(np.sum(np.diff(fit.trace) < 0)),
            "converged": fit.converged, "cpu_s": cpu, "wall_s": wall}, fit


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200000], help="cells")
    ap.add_argument("--m-step-cells", type=int, nargs="+", default=[25000, 50000, 100000],
                    help="cells per sampled M step (values >= a size are skipped there)")
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--groups", type=int, default=10, help="planted shared groups")
    add_run_options(ap, "nbmix_m_sample")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    command = command_line(__file__)
    work, rows = Path(a.work), []
    work.mkdir(parents=True, exist_ok=True)
    d = em_kwargs(1)
    intro = (f"# NB mixture, large-data path: sampled M steps vs exact M steps\n\nSchema defaults (restarts on "
             f"{d['restart_subsample_cells']} cells, at most {d['full_max_iters']} EM rounds on all cells); "
             "`exact`: every "
             "M step of the last EM over all cells; otherwise each over a fresh sample of `m_step_cells` cells. ARI "
             "against the planted labels and the exact fit; `rounds_down`: rounds in which the log-likelihood of all "
             "cells fell. One thread; CPU and wall seconds of the fit call.")
    if min(a.sizes) <= d["restart_subsample_cells"]:
        ap.error(f"every size must exceed restart_subsample_cells ({d['restart_subsample_cells']}): below it the "
                 "fit has no last EM on all cells")
    for n in a.sizes:
        path = work / f"sim_{n}.h5ad"
        simulate(n, a.genes, a.groups, path)
        x, truth = load(path)
        k = len(np.unique(truth))
        row, exact = fit_row(x, truth, k, a.seed, x.shape[0])
        rows.append({"fit": "exact", **row})
        print(rows[-1], flush=True)
        for c in (c for c in a.m_step_cells if c < x.shape[0]):
            rows.append({"fit": "sampled", **fit_row(x, truth, k, a.seed, c, exact)[0]})
            print(rows[-1], flush=True)
            write_results(a.out, command, pd.DataFrame(rows), intro)
        write_results(a.out, command, pd.DataFrame(rows), intro)
        path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
