#!/usr/bin/env python
"""Quality of the integrate step's large-data path (``exact_max_cells``) against the exact path, same data.

For every preprocessed input (e.g. the scale benchmark's simulated cells, ``benchmarks/scale/run.py --keep``,
or ``--simulate N``: N simulated cells preprocessed as the scale benchmark does) and every
``--exact-max-cells`` value (times every ``--consensus-cells`` value when the input has more cells than the
threshold), runs ``workflow/scripts/integrate.py`` with the schema defaults (plus ``--mode``) and records its
metrics (ARI / NMI vs the simulator's labels, clusters, alignment, agreement), the restart kept and the
restarts' compared cells, and the ARI between each run's Leiden clusters and the first run's (give the exact
path first, e.g. a value above the cell count). Quality numbers only (no timings: deterministic with the seed).

    python benchmarks/integrate/large_path.py --input /tmp/pre10000.h5ad --mode batch \
        --exact-max-cells 1000000000 5000 --out benchmarks/results/integrate_large_path
    python benchmarks/integrate/large_path.py --simulate 20000 --mode batch --exact-max-cells 1000000000 10000 \
        --consensus-cells 2000 5000 10000 --out benchmarks/results/integrate_consensus_cells
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
METRICS = [("ari", "all"), ("nmi", "all"), ("n_clusters", "all"), ("alignment", "all"), ("agreement", "all")]


def simulate(n: int, work: Path, threads: int) -> str:
    """Path of ``n`` simulated cells (two batches) preprocessed with the scale benchmark's commands."""
    sys.path.insert(0, str(HERE.parent))
    from scale.run import step_commands
    d = work / f"sim{n}"
    d.mkdir(parents=True, exist_ok=True)
    opts = argparse.Namespace(genes=2000, groups=10, k=20, leiden_starts=None, layers_epochs=1,
                              layers_minibatch_cells=None)
    steps = step_commands(n, d, opts)
    if not (d / "pre.h5ad").exists():
        for step in ("simulate", "preprocess"):
            argv = [sys.executable, str(REPO / "workflow" / "scripts" / steps[step][1][0]),
                    *map(str, steps[step][1][1:]), "--threads", str(threads)]
            subprocess.run(argv, check=True, cwd=REPO, stdout=open(d / f"{step}.log", "w"), stderr=subprocess.STDOUT)
    return str(d / "pre.h5ad")


def run_one(inp: str, mode: str, cap: int, consensus_cells: int | None, work: Path, threads: int) -> dict:
    """One integrate run; its metrics, kept restart, compared cells and Leiden labels."""
    import anndata as ad
    stem = work / f"{Path(inp).parent.name}.{Path(inp).stem}.{mode}.{cap}.{consensus_cells}"
    argv = [sys.executable, str(REPO / "workflow" / "scripts" / "integrate.py"), "--input", inp, "--mode", mode,
            "--exact-max-cells", str(cap), "--device", "cpu", "--threads", str(threads),
            *(["--consensus-cells", str(consensus_cells)] if consensus_cells else []),
            "--output", f"{stem}.h5ad", "--metrics", f"{stem}.tsv"]
    subprocess.run(argv, check=True, cwd=REPO, stdout=open(f"{stem}.log", "w"), stderr=subprocess.STDOUT)
    t = pd.read_csv(f"{stem}.tsv", sep="\t").set_index(["metric", "batch"])["value"]
    a = ad.read_h5ad(f"{stem}.h5ad")
    info = a.uns["inmf"]
    row = {"input": Path(inp).name, "cells": a.n_obs, "mode": mode, "exact_max_cells": cap,
           "consensus_cells": consensus_cells or "default",
           "compared_cells": int(info.get("rep_agreement_cells", 0)), "kept_restart": int(info["best_rep"]),
           "rep_agreement": " ".join(f"{x:.3f}" for x in np.asarray(info.get("rep_agreement", []))),
           **{m if b == "all" else f"{m}_{b}": t[(m, b)] for m, b in METRICS}}
    return row, a.obs["leiden"].astype(str).to_numpy()


def main(argv=None) -> int:
    """Run every input x threshold; write ``<out>.tsv`` and ``<out>.md`` (first line: this command)."""
    from sklearn.metrics import adjusted_rand_score
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", nargs="+", help="preprocessed .h5ad files (with obs['label'])")
    src.add_argument("--simulate", type=int, nargs="+", help="cell counts to simulate and preprocess (under --work)")
    ap.add_argument("--mode", choices=["batch", "online"], default="batch")
    ap.add_argument("--exact-max-cells", type=int, nargs="+", required=True,
                    help="thresholds; the first is the baseline the others' clusters are compared with")
    ap.add_argument("--consensus-cells", type=int, nargs="+", default=[None],
                    help="consensus subsample sizes, each run for every threshold below the input's cells "
                         "(default: the schema's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="/tmp/scfactor-bench-large-path")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "integrate_large_path"))
    a = ap.parse_args(argv)
    command = "python " + shlex.join([str(Path(__file__).resolve().relative_to(REPO)), *sys.argv[1:]])
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    inputs = a.input or [simulate(n, work, a.threads) for n in a.simulate]
    for inp in inputs:
        import anndata as ad
        cells = ad.read_h5ad(inp, backed="r").n_obs
        base = None
        for cap in a.exact_max_cells:
            for consensus_cells in (a.consensus_cells if cap < cells else [None]):
                row, labels = run_one(inp, a.mode, cap, consensus_cells, work, a.threads)
                base = labels if base is None else base
                row["ari_to_first"] = adjusted_rand_score(base, labels)
                rows.append(row)
                print(row, flush=True)
                write(pd.DataFrame(rows), command, Path(a.out))  # partial results survive an interrupted run
    return 0


def write(table: pd.DataFrame, command: str, out: Path) -> None:
    """``<out>.tsv`` and ``<out>.md``, the first line of both the command."""
    with open(out.with_suffix(".tsv"), "w") as fh:
        fh.write(f"# {command}\n")
        table.to_csv(fh, sep="\t", index=False, float_format="%.4g")
    out.with_suffix(".md").write_text("\n".join([
        command, "", "ARI / NMI of the Leiden clusters vs the simulator's labels; `ari_to_first`: ARI between the "
        "run's clusters and those of the first run on the same input; `compared_cells`: cells the restarts were "
        "compared on (batch mode); `kept_restart`: the restart kept (0-based) and `rep_agreement` every "
        "restart's mean ARI to the others on those cells.", "", table.to_markdown(index=False, floatfmt=".4g"), ""]))


if __name__ == "__main__":
    sys.exit(main())
