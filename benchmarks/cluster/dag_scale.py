#!/usr/bin/env python
"""How long `snakemake -n` takes to build the DAG as the fan-out grows (issue 8, "Scale").

Times, in one run on this machine: parsing only (`--list-rules`, the fixed start-up cost), then dry runs
of config/config.yaml, config/paper.yaml, and paper.yaml with the MTL replicates multiplied (more shards).
Writes benchmarks/results/cluster_dag.tsv (config, jobs, train shards, seconds, seconds minus parse).
Run from the repository root:  python benchmarks/cluster/dag_scale.py [--reps 3 10]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def timed(args, cwd) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"error: snakemake {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return dt, proc.stdout + proc.stderr


def job_counts(text: str) -> dict[str, int]:
    block = text[text.index("Job stats"):]
    counts = {}
    for line in block.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, nargs="+", default=[3, 10], help="MTL replicates for the scaled paper DAGs")
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "cluster_dag.tsv"))
    args = p.parse_args()
    rows = []
    parse_s, _ = timed(["--configfile", "config/paper.yaml", "--list-rules"], REPO)
    rows.append(("parse only (--list-rules)", 0, 0, parse_s))
    with tempfile.TemporaryDirectory() as tmp:
        configs = [("config/config.yaml", REPO / "config" / "config.yaml")]
        paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
        for reps in args.reps:
            cfg = dict(paper)
            cfg["mtl"] = {**paper["mtl"], "reps": reps}
            path = Path(tmp) / f"paper_reps{reps}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            configs.append((f"config/paper.yaml, mtl.reps={reps}", path))
        for name, path in configs:
            dt, out = timed(["--configfile", str(path), "-n", "--quiet", "rules"], REPO)
            counts = job_counts(out)
            rows.append((name, counts.get("total", 0), counts.get("mtl_train_shard", 0), dt))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["config\tjobs\tmtl_train_shard_jobs\tseconds\tseconds_minus_parse"]
    for name, jobs, shards, dt in rows:
        lines.append(f"{name}\t{jobs}\t{shards}\t{dt:.1f}\t{max(dt - parse_s, 0):.1f}")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
