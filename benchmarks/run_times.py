#!/usr/bin/env python
"""Where the time of a finished Snakemake run went: wall time and job-seconds per rule, from its log.

Usage (a run of the paper config, logged to a file, then this):
    /usr/bin/time -v snakemake --profile profiles/local --configfile config/paper.yaml --keep-going \
        > paper.run.log 2>&1
    python benchmarks/run_times.py --log paper.run.log --label "config/paper.yaml, 2 cores" \
        --output benchmarks/results/run_paper.md

Reads the timestamped job start / "Finished jobid" lines Snakemake prints (local execution), so it needs
no instrumentation of the rules. Job-seconds are wall seconds per job (one-second resolution); with
`--cores 2` two jobs overlap, so their sum is about twice the wall time when the machine is kept busy.
If `/usr/bin/time -v` wrapped the run, its elapsed time and peak RSS are reported too.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import checkout_commit, command_line  # noqa: E402

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
ERROR = re.compile(r"^Error in rule (\w+):$")
PROGRESS = re.compile(r"^(\d+) of (\d+) steps \((\d+)%\) done$")
ELAPSED = re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)")
MAXRSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def parse_log(path: Path) -> dict:
    """Job starts, finishes and failures of one Snakemake log, with the run's first and last timestamps."""
    stamp = first = last = None
    pending_rule = None
    starts: dict[str, tuple[str, datetime]] = {}
    jobs, failed, progress, elapsed, maxrss = [], [], None, None, None
    for line in path.read_text(errors="replace").splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            first = first or stamp
            last = stamp
        elif m := START.match(line):
            pending_rule = m.group(1)
        elif (m := JOBID.match(line)) and pending_rule:
            starts[m.group(1)] = (pending_rule, stamp)
            pending_rule = None
        elif m := FINISHED.match(line):
            rule, began = starts.pop(m.group(1), (m.group(2), None))
            if began is not None:
                jobs.append((rule, (stamp - began).total_seconds()))
        elif m := ERROR.match(line):
            failed.append(m.group(1))
        elif m := PROGRESS.match(line):
            progress = (int(m.group(1)), int(m.group(2)))
        elif m := ELAPSED.search(line):
            elapsed = m.group(1)
        elif m := MAXRSS.search(line):
            maxrss = int(m.group(1))
    return {"first": first, "last": last, "jobs": jobs, "failed": failed, "progress": progress,
            "elapsed": elapsed, "maxrss_kb": maxrss, "unfinished": sorted({r for r, _ in starts.values()})}


def per_rule(jobs: list[tuple[str, float]]) -> pd.DataFrame:
    """Jobs, total / median / max job-seconds per rule, largest total first."""
    df = pd.DataFrame(jobs, columns=["rule", "seconds"])
    out = df.groupby("rule")["seconds"].agg(jobs="count", total_s="sum", median_s="median", max_s="max")
    out["share"] = out["total_s"] / out["total_s"].sum()
    return out.sort_values("total_s", ascending=False).reset_index()


def render(info: dict, table: pd.DataFrame, label: str, command: str) -> str:
    """The Markdown report, headed by the ``command`` that made it."""
    wall = (info["last"] - info["first"]).total_seconds() if info["first"] else float("nan")
    done, total = info["progress"] or (len(info["jobs"]), len(info["jobs"]))
    lines = [command, "", f"# Run time: {label}", "",
             f"From the Snakemake log of that run, in a checkout at commit {checkout_commit()}.", "",
             f"- wall time, first to last log timestamp: {wall:.0f} s ({wall / 3600:.2f} h)",
             f"- steps done: {done} of {total}; jobs timed: {len(info['jobs'])}; "
             f"job-seconds in all: {table['total_s'].sum():.0f}"]
    if info["elapsed"]:
        lines.append(f"- `/usr/bin/time`: elapsed {info['elapsed']}, peak RSS of the largest process "
                     f"{info['maxrss_kb'] / 1024:.0f} MiB")
    if info["failed"]:
        lines.append(f"- failed jobs: {len(info['failed'])} ({', '.join(sorted(set(info['failed'])))})")
    if info["unfinished"]:
        lines.append(f"- started but not finished: {', '.join(info['unfinished'])}")
    lines += ["", "| rule | jobs | job-seconds | share | median s | max s |", "|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.rule} | {r.jobs} | {r.total_s:.0f} | {r.share:.1%} | {r.median_s:.0f} | {r.max_s:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, required=True, help="Snakemake output of the run (stdout + stderr).")
    ap.add_argument("--label", default="", help="What was run (config, cores, machine).")
    ap.add_argument("--output", type=Path, required=True, help="Markdown report; a .tsv of the table beside it.")
    args = ap.parse_args(argv)
    info = parse_log(args.log)
    if not info["jobs"]:
        ap.error(f"{args.log}: no finished job found in this log")
    table = per_rule(info["jobs"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    command = command_line(__file__)
    args.output.write_text(render(info, table, args.label or str(args.log), command))
    with open(args.output.with_suffix(".tsv"), "w") as fh:
        fh.write(f"# {command}\n")
        table.to_csv(fh, sep="\t", index=False, float_format="%.1f")
    print(args.output.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
