#!/usr/bin/env python
"""A whole config run with its inputs and outputs in object storage, against the same config run locally
(issue 17, item 1): does every job run without a shared file system, and are the results the same?

Starts moto's S3 server on localhost (`s3local`), puts the bundled resources below the run prefix, then
1. runs the config locally in a fresh working directory (the reference);
2. runs it with ``--default-storage-provider s3 --default-storage-prefix s3://<bucket>/<run>`` in another
   fresh working directory (Snakemake's local executor: every job stages its inputs from the bucket and its
   outputs to it, as on a cloud executor);
3. runs it once more from a third fresh directory, which must have nothing to do;
4. downloads the bucket and compares it with the local run: files made by one and not the other, and every
   table (.tsv) value by value (`benchmarks/compare_results.py`; run-time columns ignored).
Writes benchmarks/results/storage_run_<name>.md (first line: the command). Wall times and the load average
are recorded beside the result, as facts of this run, not as a benchmark of speed.
Run from the repository root:  python benchmarks/cluster/storage_run.py [--configs config/config.yaml]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUCKET = "scfactor-storage-run"


def snakemake(workdir: Path, configs, cores: int, *extra: str) -> tuple[str, float]:
    """Run Snakemake on ``configs`` in ``workdir`` (the bundled resources linked in, since the checksum list is
    read when the workflow is parsed); returns its output and wall seconds; exits on failure."""
    workdir.mkdir(parents=True)
    os.symlink(REPO / "resources", workdir / "resources")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", *[str(REPO / c) for c in configs], "--cores", str(cores), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"error: {shlex.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr, wall


def download(run: str, dest: Path) -> int:
    """Every object below ``run/`` into ``dest`` (the bucket's layout is a run's working directory)."""
    from s3local import client
    c, n = client(), 0
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{run}/"):
        for o in page.get("Contents", []):
            out = dest / o["Key"][len(run) + 1:]
            out.parent.mkdir(parents=True, exist_ok=True)
            c.download_file(BUCKET, o["Key"], str(out))
            n += 1
    return n


def files(root: Path) -> set[str]:
    """Result files below ``root/results`` (training checkpoints are state, not results)."""
    return {str(p.relative_to(root)) for p in (root / "results").rglob("*")
            if p.is_file() and "/checkpoints/" not in str(p)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["config/config.yaml"],
                   help="config files, relative to the repository")
    p.add_argument("--cores", type=int, default=2, help="cores of each Snakemake run")
    p.add_argument("--name", default=None, help="results file suffix (default: the last config's stem)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(REPO / "benchmarks"))
    from compare_results import compare
    from s3local import s3_server, upload_resources

    name = args.name or Path(args.configs[-1]).stem
    run = f"run-{name}"
    storage = ["--default-storage-provider", "s3", "--default-storage-prefix", f"s3://{BUCKET}/{run}"]
    facts = {"load average before": "%.2f %.2f %.2f" % os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp, s3_server(BUCKET):
        tmp = Path(tmp)
        upload_resources(BUCKET, lambda f: f"{run}/resources/{f.relative_to(REPO / 'resources')}")
        _, facts["local run, wall s"] = snakemake(tmp / "local", args.configs, args.cores)
        text, facts["storage run, wall s"] = snakemake(tmp / "storage1", args.configs, args.cores, *storage)
        done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", text)
        jobs = int(done[-1][1]) if done else 0
        again, _ = snakemake(tmp / "storage2", args.configs, args.cores, *storage)
        facts["load average after"] = "%.2f %.2f %.2f" % os.getloadavg()
        n_objects = download(run, tmp / "bucket")
        local, remote = files(tmp / "local"), files(tmp / "bucket")
        tables = sorted(f for f in local & remote if f.endswith(".tsv"))
        verdicts = [(f, *compare(tmp / "local" / f, tmp / "bucket" / f)) for f in tables]

    different = [(f, d) for f, v, d in verdicts if v != "identical"]
    lines = ["python " + shlex.join([str(Path(__file__).resolve().relative_to(REPO)), *(argv or sys.argv[1:])]),
             "", f"# {' + '.join(args.configs)}: local run vs run on object storage (moto S3 on localhost)", "",
             f"- jobs run on storage: {jobs}; objects in the bucket afterwards: {n_objects}",
             f"- a third run from a fresh directory: "
             f"{'nothing to be done' if 'Nothing to be done' in again else 'RAN JOBS'}",
             f"- result files: local {len(local)}, bucket {len(remote)}; only local: {len(local - remote)}, "
             f"only in the bucket: {len(remote - local)}",
             f"- tables compared value by value (run-time columns ignored): {len(tables)}, identical "
             f"{len(tables) - len(different)}, not identical {len(different)}",
             *[f"  - `{f}`: {d}" for f, d in different],
             *[f"  - only local: `{f}`" for f in sorted(local - remote)],
             *[f"  - only in the bucket: `{f}`" for f in sorted(remote - local)],
             "", "| fact of this run | value |", "|---|---|",
             *[f"| {k} | {v:.0f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in facts.items()]]
    report = "\n".join(lines) + "\n"
    (REPO / "benchmarks" / "results" / f"storage_run_{name}.md").write_text(report)
    print(report, end="")
    ok = not different and local == remote and "Nothing to be done" in again
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
