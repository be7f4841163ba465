#!/usr/bin/env python
"""Collect the headline numbers of a finished workflow run into one Markdown table.

Usage (after `make run` or a paper run):
    python benchmarks/headlines.py --results results --label "default config" \
        --output benchmarks/results/headlines_default.md

Reads only the metrics files the rules write (no recomputation), so the table is exactly what that
run produced. Missing analyses are skipped with a note.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import checkout_commit, command_line  # noqa: E402


def _read(path):
    return pd.read_csv(path, sep="\t")


def densify_rows(res):
    for f in sorted(glob.glob(f"{res}/densify/*/*.heldout.tsv")):
        df = _read(f).set_index("method")
        ds, batch = Path(f).parent.name, Path(f).name.split(".")[0]
        neumf = [m for m in df.index if m.startswith("neumf")][0]
        svd = [m for m in df.index if m.startswith("svd")]
        other = f"; rank-k SVD {df.loc[svd[0], 'pearson_log1p']:.3f}" if svd else ""
        yield ("NeuMF densify", f"{ds} {batch}", "held-out Pearson(log1p)",
               f"{df.loc[neumf, 'pearson_log1p']:.3f} ({neumf}){other}", f)


def integrate_rows(res):
    for f in sorted(glob.glob(f"{res}/integrate/*/*.metrics.tsv")):
        df = _read(f)
        allb = df[df["batch"] == "all"].set_index("metric")["value"]
        ds, src = Path(f).parent.name, Path(f).name.split(".")[0]
        yield ("LIGER iNMF", f"{ds} on {src}", "alignment / ARI / NMI (labelled cells)",
               f"{allb['alignment']:.3f} / {allb['ari']:.3f} / {allb['nmi']:.3f} (n={int(allb['n_labelled'])})", f)


def nbmix_rows(res):
    f = f"{res}/nbmix/summary.tsv"
    if not os.path.exists(f):
        return
    df = _read(f)
    for ds, g in df.groupby("dataset", sort=False):
        parts = [f"{r.method}: ARI {r.ari:.3f}, NMI {r.nmi:.3f}" for r in g.itertuples()]
        kind = g["label_kind"].iloc[0]
        yield ("NB mixture", ds, f"vs {kind}", "; ".join(parts), f)


def mtl_rows(res):
    for f in sorted(glob.glob(f"{res}/mtl/*/summary.tsv")):
        df = _read(f)
        ds = Path(f).parent.name
        for tissue, g in df.groupby("tissue", sort=False):
            r = g.set_index("model")
            tn = r.loc["tracenorm", "mean_r2"] if "tracenorm" in r.index else float("nan")
            l0 = r.loc["lambda0", "mean_r2"] if "lambda0" in r.index else float("nan")
            yield ("trace-norm MTL", f"{ds} {tissue}", "mean test R2: trace norm / lambda=0 / lasso",
                   f"{tn:.3f} / {l0:.3f} / {r['mean_lasso_r2'].iloc[0]:.3f}", f)


def layers_rows(res):
    for f in sorted(glob.glob(f"{res}/layers/*.metrics.tsv")):
        m = _read(f).set_index("metric")["value"]
        ds = Path(f).name.split(".")[0]
        if "beta_match_corr_l2" in m:
            yield ("multilayer NMF", ds, "beta match corr (layer 2) / ARI (ceiling)",
                   f"{m['beta_match_corr_l2']:.3f} / {m['ari_l2']:.3f} ({m['ari_truth']:.3f})", f)
        elif "ari_label" in m:
            yield ("multilayer NMF", ds, "ARI of argmax factor vs labels", f"{m['ari_label']:.3f}", f)


def grn_rows(res):
    f = f"{res}/grn/summary.tsv"
    if not os.path.exists(f):
        return
    for r in _read(f).to_dict("records"):
        yield ("masked GRN", r["transition"], "median held-out R2 (linear / MLP); sign agreement (chance)",
               f"{r['linear:r2_median']:.3f} / {r['mlp:r2_median']:.3f}; "
               f"{r['linear:sign_agreement']:.2f} ({r['linear:sign_chance']:.2f})", f)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results")
    p.add_argument("--label", default="default config")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    rows = []
    for fn in (densify_rows, integrate_rows, nbmix_rows, mtl_rows, layers_rows, grn_rows):
        rows.extend(fn(args.results))
    if not rows:
        raise SystemExit(f"error: {args.results}: no metrics files found")
    lines = [command_line(__file__), "", f"# Headline numbers: {args.label}", "",
             f"Collected from the metrics files of one workflow run, in a checkout at commit {checkout_commit()}",
             "(paths relative to the run's working directory).", "",
             "| analysis | data | metric | value | from |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {d} | {m} | {v} | `{os.path.relpath(f, os.path.dirname(args.results) or '.')}` |"
              for a, d, m, v, f in rows]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"{len(rows)} rows -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
