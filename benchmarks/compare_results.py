#!/usr/bin/env python
"""Compare the tables (.tsv) of two results folders value by value: same files, same columns, same values.

Used to show that a refactor leaves a run's numbers unchanged, e.g. the default run before and after:

    python benchmarks/compare_results.py --before OLD/results --after NEW/results --output cmp.md

Columns that record run time (``seconds``, ``cpu_seconds``, ``samples_per_s``) are ignored; everything else
must be equal (NaN equals NaN). The output file starts with the exact command that wrote it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

RUN_TIME = {"seconds", "cpu_seconds", "train_seconds", "samples_per_s"}


def _key(df: pd.DataFrame) -> list[str]:
    """Columns that identify a row (the first text column if it is unique, else the first two), so that added
    rows can be told from changed ones."""
    text = [c for c in df.columns if df[c].dtype == object]
    return text[:1] if text and df[text[0]].is_unique else text[:2]


def _equal(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    if u.dtype.kind in "fiub" and v.dtype.kind in "fiub":
        u, v = u.astype(float), v.astype(float)
        return (u == v) | (np.isnan(u) & np.isnan(v))
    return pd.Series(u).fillna("<NA>").astype(str).to_numpy() == pd.Series(v).fillna("<NA>").astype(str).to_numpy()


def compare(a: Path, b: Path) -> tuple[str, str]:
    """("identical" | "same values, more columns/rows" | "DIFFERENT", details) for two tables."""
    x, y = pd.read_csv(a, sep="\t"), pd.read_csv(b, sep="\t")
    x, y = x.drop(columns=[c for c in x if c in RUN_TIME]), y.drop(columns=[c for c in y if c in RUN_TIME])
    added = [c for c in y.columns if c not in x.columns]
    lost = [c for c in x.columns if c not in y.columns]
    if lost:
        return "DIFFERENT", f"columns missing after: {lost}"
    notes = [f"added columns {added}"] if added else []
    key = _key(x)
    if len(x) != len(y):
        if not key:
            return "DIFFERENT", f"{len(x)} rows vs {len(y)}"
        y = y.set_index(key)
        x = x.set_index(key)
        new_rows = [str(i) for i in y.index.difference(x.index)]
        if len(x.index.difference(y.index)):
            return "DIFFERENT", f"rows missing after: {list(map(str, x.index.difference(y.index)))}"
        notes.append(f"added rows {new_rows}")
        y = y.loc[x.index].reset_index()
        x = x.reset_index()
    for col in x.columns:
        same = _equal(x[col].to_numpy(), y[col].to_numpy())
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            return "DIFFERENT", f"column {col!r} row {i}: {x[col].iloc[i]!r} vs {y[col].iloc[i]!r}"
    return ("identical", "") if not notes else ("same values, " + "; ".join(notes), "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, type=Path)
    p.add_argument("--after", required=True, type=Path)
    p.add_argument("--output", required=True, type=Path)
    args = p.parse_args(argv)
    before = {q.relative_to(args.before) for q in args.before.rglob("*.tsv")}
    after = {q.relative_to(args.after) for q in args.after.rglob("*.tsv")}
    rows = []
    for rel in sorted(before | after):
        if rel not in after:
            rows.append((rel, "only before"))
        elif rel not in before:
            rows.append((rel, "only after"))
        else:
            verdict, why = compare(args.before / rel, args.after / rel)
            rows.append((rel, f"{verdict}: {why}" if why else verdict))
    same = sum(r[1] == "identical" for r in rows)
    kept = sum(r[1].startswith("same values") for r in rows)
    lines = [f"<!-- written by: python {shlex.join(['benchmarks/compare_results.py', *sys.argv[1:]])} -->",
             f"# {args.before} vs {args.after}", "",
             f"{same} of {len(rows)} tables identical, {kept} with the same values plus added columns or rows, "
             f"{len(rows) - same - kept} different (run-time columns {sorted(RUN_TIME)} ignored).", "",
             "| table | result |", "|---|---|"] + [f"| `{r}` | {s} |" for r, s in rows]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[2:4]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
