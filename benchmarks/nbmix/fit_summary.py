#!/usr/bin/env python
"""NB mixture: what finished fits cost and reached, read from their outputs (no refitting).

    python benchmarks/nbmix/fit_summary.py --fit results/nbmix/kang results/nbmix/pbmc3k \
        --label 'config/paper.yaml, screen 10 rounds' --out benchmarks/results/nbmix_screen_real

For each fit directory (``nbmix.h5ad`` and ``nbmix.metrics.tsv`` of the ``nbmix`` rule): the fit's wall seconds
(EM and starts, as the fit timed itself, without reading and writing), the EM rounds of all restarts together,
the restarts screened out, run to the end and at the best log-likelihood, the kept start, the log-likelihood per
cell and the scores against the labels. Writes ``<out>.tsv`` and ``<out>.md``, the command on their first line and
the checkout's commit in the text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from results_file import checkout_commit, command_line, write_results  # noqa: E402


def fit_row(fit_dir: Path) -> dict:
    """One row: cost and result of the fit in ``fit_dir``."""
    import anndata as ad
    uns = ad.read_h5ad(fit_dir / "nbmix.h5ad", backed="r").uns["nbmix"]
    metrics = pd.read_csv(fit_dir / "nbmix.metrics.tsv", sep="\t").iloc[0]
    rec = pd.DataFrame({k: list(v) for k, v in uns["restarts"].items()})
    screened = rec["screened_out"].astype(bool) if "screened_out" in rec else pd.Series(False, index=rec.index)
    return {"fit": fit_dir.name, "cells": int(metrics["n_cells"]), "genes": int(metrics["n_genes"]),
            "k": int(metrics["k"]), "fit_wall_s": float(uns["seconds"]), "restarts": len(rec),
            "screened_out": int(screened.sum()), "run_to_end": int((~screened).sum()),
            "at_best": int(rec["at_best"].astype(bool).sum()), "em_rounds_all_restarts": int(rec["n_iter"].sum()),
            "kept_start": str(uns["init"]), "kept_rounds": int(uns["n_iter"]),
            "loglik_per_cell": float(uns["loglik"]) / int(metrics["n_cells"]),
            "ari": float(metrics["ari"]), "nmi": float(metrics["nmi"])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", nargs="+", required=True, help="fit directories (results/nbmix/<run>)")
    p.add_argument("--label", required=True, help="what run produced the fits (written into the results)")
    p.add_argument("--out", required=True, help="output prefix (.tsv and .md are added)")
    args = p.parse_args(argv)
    table = pd.DataFrame([fit_row(Path(d)) for d in args.fit])
    intro = (f"# NB mixture fits: cost and result ({args.label}; checkout {checkout_commit()})\n\n"
             "`fit_wall_s`: the fit's own timing (starts and EM of every restart; one thread); "
             "`em_rounds_all_restarts`: EM rounds of all restarts together; `screened_out`: restarts the screen "
             "stopped (`screen_rounds`, `screen_margin`); `at_best`: restarts within `best_tol` of the best "
             "log-likelihood; `ari` / `nmi` against the run's labels.")
    write_results(args.out, command_line(__file__), table, intro)
    print(Path(args.out + ".md").read_text())


if __name__ == "__main__":
    main()
