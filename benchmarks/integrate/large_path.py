#!/usr/bin/env python
"""Quality of the integrate step's large-data path (``exact_max_cells``) against the exact path, same data.

For every preprocessed input (e.g. the scale benchmark's simulated cells, ``benchmarks/scale/run.py --keep``)
and every ``--exact-max-cells`` value, runs ``workflow/scripts/integrate.py`` with the schema defaults (plus
``--mode``) and records its metrics (ARI / NMI vs the simulator's labels, clusters, alignment, agreement), the
restarts' compared cells, and the ARI between each run's Leiden clusters and the first value's (give the exact
path first, e.g. a value above the cell count). Quality numbers only (no timings: deterministic with the seed).

    python benchmarks/integrate/large_path.py --input /tmp/pre10000.h5ad --mode batch \
        --exact-max-cells 1000000000 5000 --out benchmarks/results/integrate_large_path
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
METRICS = [("ari", "all"), ("nmi", "all"), ("n_clusters", "all"), ("alignment", "all"), ("agreement", "all")]


def run_one(inp: str, mode: str, cap: int, work: Path, threads: int) -> dict:
    """One integrate run; its metrics, compared cells and Leiden labels."""
    import anndata as ad
    stem = work / f"{Path(inp).stem}.{mode}.{cap}"
    argv = [sys.executable, str(REPO / "workflow" / "scripts" / "integrate.py"), "--input", inp, "--mode", mode,
            "--exact-max-cells", str(cap), "--device", "cpu", "--threads", str(threads),
            "--output", f"{stem}.h5ad", "--metrics", f"{stem}.tsv"]
    subprocess.run(argv, check=True, cwd=REPO, stdout=open(f"{stem}.log", "w"), stderr=subprocess.STDOUT)
    t = pd.read_csv(f"{stem}.tsv", sep="\t").set_index(["metric", "batch"])["value"]
    a = ad.read_h5ad(f"{stem}.h5ad")
    row = {"input": Path(inp).name, "cells": a.n_obs, "mode": mode, "exact_max_cells": cap,
           "compared_cells": int(a.uns["inmf"].get("rep_agreement_cells", 0)),
           **{m if b == "all" else f"{m}_{b}": t[(m, b)] for m, b in METRICS}}
    return row, a.obs["leiden"].astype(str).to_numpy()


def main(argv=None) -> int:
    """Run every input x threshold; write ``<out>.tsv`` and ``<out>.md`` (first line: this command)."""
    from sklearn.metrics import adjusted_rand_score
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", nargs="+", required=True, help="preprocessed .h5ad files (with obs['label'])")
    ap.add_argument("--mode", choices=["batch", "online"], default="batch")
    ap.add_argument("--exact-max-cells", type=int, nargs="+", required=True,
                    help="thresholds; the first is the baseline the others' clusters are compared with")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="/tmp/scfactor-bench-large-path")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "integrate_large_path"))
    a = ap.parse_args(argv)
    command = "python " + shlex.join([str(Path(__file__).resolve().relative_to(REPO)), *sys.argv[1:]])
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for inp in a.input:
        base = None
        for cap in a.exact_max_cells:
            row, labels = run_one(inp, a.mode, cap, work, a.threads)
            base = labels if base is None else base
            row["ari_to_first"] = adjusted_rand_score(base, labels)
            rows.append(row)
            print(row, flush=True)
    table = pd.DataFrame(rows)
    out = Path(a.out)
    with open(out.with_suffix(".tsv"), "w") as fh:
        fh.write(f"# {command}\n")
        table.to_csv(fh, sep="\t", index=False, float_format="%.4g")
    out.with_suffix(".md").write_text("\n".join([
        command, "", "ARI / NMI of the Leiden clusters vs the simulator's labels; `ari_to_first`: ARI between the "
        "run's clusters and those of the first threshold's run on the same input; `compared_cells`: cells the "
        "restarts were compared on (batch mode).", "", table.to_markdown(index=False, floatfmt=".4g"), ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
