#!/usr/bin/env python
"""What Snakemake's job selection costs in a wide fan-out: the same MTL shard jobs under each `--scheduler`.

Snakemake selects the jobs to start every time a job ends; its default ``ilp`` selector builds an integer
program over every ready job and solves it in a CBC subprocess, ``greedy`` picks by priority and resources.
Here the MTL run ``sim`` of ``config/config.yaml + config/paper.yaml`` (5 tissues x 20 gene clusters x 3
replicates x 2 models = 600 shard jobs, then the aggregate) runs once to build its inputs, then its shards
are forced to rerun under each scheduler in turn (``--rounds`` times, alternating), on ``--cores`` cores.
The lasso baseline is cut to a short path (``--lasso-overlay``) and the shards to ``--epochs`` epochs so
that the run is short: both only change what a job computes, not how many jobs there are.

Per run: wall seconds, CPU seconds of Snakemake and everything it started (``RUSAGE_CHILDREN``), jobs
run, and the job-seconds the log's own timestamps give (`run_times.parse_log`); overhead = wall - job
seconds / cores (time a core was not in a job). Writes ``--out``.tsv/.md headed by this command.
Run from the repository root:  python benchmarks/cluster/scheduler.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from results_file import checkout_commit, command_line, write_results  # noqa: E402
from run_times import parse_log  # noqa: E402


def overlay(workdir: Path, epochs: int) -> Path:
    """A config overlay: results and logs under ``workdir``, a short lasso path, ``epochs`` shard epochs."""
    cfg = {"results": str(workdir / "results"), "logs": str(workdir / "logs"),
           "mtl": {"lasso": {"n_alphas": 2, "cv": 2, "max_iter": 10}, "train": {"epochs": epochs}}}
    path = workdir / "overlay.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(target: str, configs, cores: int, extra, log: Path) -> tuple[float, float]:
    """Run snakemake on ``target``; (wall s, CPU s of it and its children). Its output goes to ``log``."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "snakemake", target, "--cores", str(cores),
                               "--profile", "profiles/local", *extra, "--configfile", *configs],
                              cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"error: snakemake failed (exit {proc.returncode}); see {log}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--schedulers", nargs="+", default=["ilp", "greedy"])
    p.add_argument("--rounds", type=int, default=1, help="runs per scheduler, alternating")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1, help="epochs per shard (the paper config: 10)")
    p.add_argument("--workdir", default=None, help="results of the runs (default: a temporary folder)")
    p.add_argument("--out", default="benchmarks/results/scheduler")
    args = p.parse_args(argv)
    command = command_line(__file__)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        configs = ["config/config.yaml", "config/paper.yaml", str(overlay(work, args.epochs))]
        target = str(work / "results" / "mtl" / "sim" / "r2.tsv")
        print("building the inputs of the shards ...", file=sys.stderr)
        snakemake(target, configs, args.cores, ["--scheduler", "greedy"], work / "setup.log")
        rows = []
        for rnd in range(args.rounds):
            for sched in args.schedulers:
                log = work / f"{sched}_{rnd}.log"
                wall, cpu = snakemake(target, configs, args.cores,
                                      ["--scheduler", sched, "--forcerun", "mtl_train_shard"], log)
                info = parse_log(log)
                job_s = sum(seconds for _, seconds, _ in info["jobs"])
                rows.append({"scheduler": sched, "round": rnd, "jobs": len(info["jobs"]),
                             "wall_s": wall, "cpu_s": cpu, "job_s": job_s,
                             "overhead_s": wall - job_s / args.cores,
                             "overhead_per_job_s": (wall - job_s / args.cores) / max(len(info["jobs"]), 1)})
                print(rows[-1], file=sys.stderr)
    table = pd.DataFrame(rows)
    intro = (f"# Snakemake job selection in a fan-out of MTL shards, by `--scheduler`\n\n"
             f"Checkout {checkout_commit(REPO)}; run `sim` of config/config.yaml + config/paper.yaml, shards forced "
             f"to rerun (`--forcerun mtl_train_shard`), {args.epochs} epoch(s) per shard, `--cores {args.cores}`, "
             f"runs alternating. `cpu_s`: Snakemake and every process it started; `job_s`: the jobs' own "
             f"durations from the log's timestamps; `overhead_s` = wall - job_s / cores.")
    write_results(args.out, command, table, intro, floatfmt=".2f")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
