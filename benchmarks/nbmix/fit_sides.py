#!/usr/bin/env python
"""NB mixture: the whole EM fit at each side's schema defaults, working tree against another commit.

    python benchmarks/nbmix/fit_sides.py --input /tmp/kang14k/pre.h5ad --k 8 --code-commit 8efc9b3 \
        --repeats 1 --out benchmarks/results/nbmix_fit_sides_kang14k

The run's cells as the NB-mixture step loads them (`scfactor.nbmix.pipeline.load_cells`: ``--batch``, ``--genes``,
the ``counts`` layer) and one `fit_em` call with everything at the schema defaults of the side's own code
(restarts, restart screen, stopping rule; seed 0), as the ``nbmix`` rule runs it. Each side runs in its own process
with one thread, the sides alternating (`common.alternate_code_sides`), ``--repeats`` times. Reported per side: CPU
and wall seconds of the fit call (median over the repeats, and every run), the EM rounds of all restarts, the kept
restart's rounds, its log-likelihood per cell, the restarts at the best log-likelihood, the ARI against the labels
(``--labels-key`` in ``obs``, when present) and between the two sides' partitions. Writes ``<out>.tsv`` and
``<out>.md``, the command on their first line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import (add_code_side_options, add_run_cells_options, alternate_code_sides, label_codes,  # noqa: E402
                    run_cells, run_ours)
from results_file import command_line, run_conditions, write_results  # noqa: E402


def child(a) -> int:
    """Fit with the package under ``a.code`` at its defaults; save the responsibilities to ``a.result``."""
    sys.path.insert(0, a.code)
    import torch
    torch.set_num_threads(1)
    from sklearn.metrics import adjusted_rand_score
    adata = run_cells(a)
    fit, wall, cpu = run_ours(adata.X, a.k, 0)
    np.save(a.result, fit.resp)
    truth = label_codes(adata.obs, a.labels_key)
    ari = None if truth is None else adjusted_rand_score(truth[truth >= 0], fit.labels[truth >= 0])
    print(json.dumps({"cells": adata.n_obs, "genes": adata.n_vars, "restart_rounds": fit.restart_rounds,
                      "kept_rounds": fit.n_iter, "loglik_per_cell": fit.loglik / adata.n_obs,
                      "n_at_best": fit.n_at_best, "n_restarts": len(fit.restarts), "ari_vs_labels": ari,
                      "cpu_s": cpu, "wall_s": wall}))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_cells_options(ap)
    ap.add_argument("--labels-key", default="label", help="obs column of the labels ARI is scored against")
    add_code_side_options(ap, "nbmix_fit_sides")
    a = ap.parse_args(argv)
    if a.child:
        return child(a)
    command = command_line(__file__)
    load_before = os.getloadavg()[0]
    args = ["--input", a.input, "--genes", a.genes, "--k", str(a.k), "--labels-key", a.labels_key,
            "--code-commit", a.code_commit, *(["--batch", a.batch] if a.batch else [])]
    runs, before, after = alternate_code_sides(__file__, args, a.code_commit, a.repeats, "fit_sides")
    firsts = ["cells", "genes", "restart_rounds", "kept_rounds", "loglik_per_cell", "n_at_best", "n_restarts",
              "ari_vs_labels"]
    table = pd.DataFrame(runs).groupby("side", sort=False).agg(
        **{c: (c, "first") for c in firsts}, cpu_s=("cpu_s", "median"), wall_s=("wall_s", "median"),
        cpu_runs=("cpu_s", lambda v: " ".join(f"{t:.1f}" for t in v))).reset_index()
    from sklearn.metrics import adjusted_rand_score
    intro = (f"# NB mixture: the whole fit at each side's defaults, k={a.k}, {Path(a.input).name}"
             f"{f' (batch {a.batch})' if a.batch else ''}\n\nEach side in its own process, one thread, alternating, "
             f"{a.repeats} repeat(s) (median; every run in `cpu_runs`). CPU time ratio (before / after): "
             f"{table.cpu_s.iloc[0] / table.cpu_s.iloc[1]:.2f}x (wall {table.wall_s.iloc[0] / table.wall_s.iloc[1]:.2f}x)"
             f". ARI between the two sides' partitions {adjusted_rand_score(before.argmax(1), after.argmax(1)):.4f}; "
             "`ari_vs_labels` against the labelled cells, `restart_rounds` the EM rounds of all restarts, "
             "`kept_rounds` those of the kept one. " + run_conditions(load_before))
    write_results(a.out, command, table, intro, floatfmt=".6g")
    print(intro)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
