#!/usr/bin/env python
"""How many object-storage requests Snakemake makes before the first job of a run on S3 (issue 17, item 4).

Starts moto's S3 server on localhost, puts an empty placeholder at the key of every bundled resource file
(existence is all a dry run asks), then dry-runs the given configs (default: the paper DAG,
config/config.yaml + config/paper.yaml) with ``--default-storage-provider s3`` in a fresh working directory
and counts the requests the server logs, by kind: once with this workflow's prefix inventory
(`scfactor.core.s3inventory`: one listing of the run's prefix), once with the plugin's own behaviour
(``SCFACTOR_S3_INVENTORY=0``: one listing of the first file's folder, then requests file by file).
A dry run does what a real run does before its first job: build the DAG and check every file's existence
and modification time. Writes benchmarks/results/storage_requests.md (first line: the command).
Run from the repository root:  python benchmarks/cluster/storage_requests.py [--configs ...]
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUCKET = "scfactor-bench"
OUT = REPO / "benchmarks" / "results" / "storage_requests.md"
_REQUEST = re.compile(r'"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/[\d.]+" (\d+)')
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")          # werkzeug colours the lines of 4xx/5xx answers


class Counter(logging.Handler):
    """Counts the requests moto's server logs (werkzeug's access log), by method, kind and status."""

    def __init__(self):
        super().__init__()
        self.requests = collections.Counter()

    def emit(self, record):
        m = _REQUEST.search(_COLOUR.sub("", record.getMessage()))
        if m:
            method, path, status = m.groups()
            key = path.split("?", 1)[0].strip("/").split("/", 1)
            kind = "bucket" if len(key) == 1 else "object"
            if "list-type" in path or "prefix=" in path:
                kind = "listing"
            self.requests[(method, kind, status)] += 1


def job_total(text: str) -> int:
    m = re.search(r"^total\s+(\d+)$", text, re.M)
    return int(m.group(1)) if m else 0


def dry_run(configs, run: str, env: dict) -> tuple[str, int]:
    """A dry run of ``configs`` on the bucket under prefix ``run`` in a fresh working directory."""
    with tempfile.TemporaryDirectory() as wd:
        os.symlink(REPO / "resources", Path(wd) / "resources")      # SHA256SUMS is read at parse time
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", wd, "-n",
               "--configfile", *[str(REPO / c) for c in configs],
               "--default-storage-provider", "s3", "--default-storage-prefix", f"s3://{BUCKET}/{run}"]
        proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"error: {shlex.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        return proc.stdout + proc.stderr, len(list((REPO / "resources").rglob("*")))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["config/config.yaml", "config/paper.yaml"],
                   help="config files of the DAG, relative to the repository")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from s3local import s3_server, upload_resources

    counter = Counter()
    logging.getLogger("werkzeug").addHandler(counter)
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    rows = []
    with s3_server(BUCKET):
        for mode, inventory in (("prefix inventory (this workflow)", "1"), ("plugin default", "0")):
            run = f"run-{inventory}"
            upload_resources(BUCKET, lambda f: f"{run}/resources/{f.relative_to(REPO / 'resources')}",
                             placeholders=True)
            counter.requests.clear()
            text, _ = dry_run(args.configs, run, {**os.environ, "SCFACTOR_S3_INVENTORY": inventory})
            rows.append((mode, job_total(text), dict(counter.requests)))

    cmd = "python " + shlex.join([str(Path(__file__).resolve().relative_to(REPO)), *(argv or sys.argv[1:])])
    lines = [cmd, "", f"Storage requests before the first job: `snakemake -n` of {' + '.join(args.configs)} with "
             "`--default-storage-provider s3` against moto's S3 server on localhost (an empty run prefix: "
             "every output still to be made; the bundled resources present). Counted from the server's "
             "request log.", "",
             "| inventory | jobs | requests | per job | by kind (method kind status: count) |",
             "|---|---|---|---|---|"]
    lines += [row(mode, jobs, reqs) for mode, jobs, reqs in rows]
    report = "\n".join(lines) + "\n"
    OUT.write_text(report)
    print(report, end="")
    return 0


def row(mode: str, jobs: int, reqs: dict) -> str:
    """One table row: requests in all, per job, and by (method, kind, status)."""
    total = sum(reqs.values())
    kinds = ", ".join(f"{m} {k} {s}: {n}" for (m, k, s), n in sorted(reqs.items(), key=lambda x: -x[1]))
    return f"| {mode} | {jobs} | {total} | {total / max(jobs, 1):.2f} | {kinds} |"


if __name__ == "__main__":
    raise SystemExit(main())
