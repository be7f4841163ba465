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
Each job's own log (the ``log:`` Snakemake names, relative to ``--workdir``) ends with the step's usage line
(`scfactor.core.cli.USAGE_LINE`): from it come the CPU seconds and the peak memory per rule (jobs whose log
has no such line, or is gone, count as unknown). If `/usr/bin/time -v` wrapped the run, its elapsed time and
peak RSS are reported too.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from results_file import checkout_commit, command_line, machine  # noqa: E402
from scfactor.core.cli import USAGE_LINE  # noqa: E402

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
JOBLOG = re.compile(r"^\s+log: (\S+)$")
#: `USAGE_LINE` with its three numbers captured
USAGE = re.compile(re.escape(USAGE_LINE).replace(r"\{wall_s:\.1f\}", r"([\d.]+)")
                   .replace(r"\{cpu_s:\.1f\}", r"([\d.]+)").replace(r"\{peak_mib:\.0f\}", r"([\d.]+)"))
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
ERROR = re.compile(r"^Error in rule (\w+):$")
PROGRESS = re.compile(r"^(\d+) of (\d+) steps \((\d+)%\) done$")
ELAPSED = re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)")
MAXRSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def parse_log(path: Path) -> dict:
    """Job starts, finishes and failures of one Snakemake log, with the run's first and last timestamps."""
    stamp = first = last = None
    pending_rule = pending_log = None
    starts: dict[str, tuple[str, datetime, str | None]] = {}
    jobs, failed, progress, elapsed, maxrss = [], [], None, None, None
    for line in path.read_text(errors="replace").splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            first = first or stamp
            last = stamp
        elif m := START.match(line):
            pending_rule, pending_log = m.group(1), None
        elif (m := JOBLOG.match(line)) and pending_rule:
            pending_log = m.group(1).split(",")[0]
        elif (m := JOBID.match(line)) and pending_rule:
            starts[m.group(1)] = (pending_rule, stamp, pending_log)
            pending_rule = None
        elif m := FINISHED.match(line):
            rule, began, job_log = starts.pop(m.group(1), (m.group(2), None, None))
            if began is not None:
                jobs.append((rule, (stamp - began).total_seconds(), job_log))
        elif m := ERROR.match(line):
            failed.append(m.group(1))
        elif m := PROGRESS.match(line):
            progress = (int(m.group(1)), int(m.group(2)))
        elif m := ELAPSED.search(line):
            elapsed = m.group(1)
        elif m := MAXRSS.search(line):
            maxrss = int(m.group(1))
    return {"first": first, "last": last, "jobs": jobs, "failed": failed, "progress": progress,
            "elapsed": elapsed, "maxrss_kb": maxrss, "unfinished": sorted({r for r, *_ in starts.values()})}


def job_usage(job_log: str | None, workdir: Path) -> tuple[float, float]:
    """(CPU seconds, peak MiB) from the usage line of a job's log, or NaNs when there is none."""
    path = workdir / job_log if job_log else None
    if path is None or not path.is_file():
        return float("nan"), float("nan")
    found = USAGE.findall(path.read_text(errors="replace"))
    return (float(found[-1][1]), float(found[-1][2])) if found else (float("nan"), float("nan"))


def per_rule(jobs: list[tuple], workdir: Path) -> pd.DataFrame:
    """Per rule: jobs, total / median / max job-seconds, CPU seconds (sum over the jobs whose logs report it;
    `cpu_jobs` of them) and the largest peak memory, largest total job-seconds first."""
    df = pd.DataFrame([(r, sec, *job_usage(log, workdir)) for r, sec, log in jobs],
                      columns=["rule", "seconds", "cpu_s", "peak_mib"])
    out = df.groupby("rule").agg(jobs=("seconds", "count"), total_s=("seconds", "sum"),
                                 median_s=("seconds", "median"), max_s=("seconds", "max"),
                                 cpu_s=("cpu_s", "sum"), cpu_jobs=("cpu_s", "count"), peak_mib=("peak_mib", "max"))
    out["share"] = out["total_s"] / out["total_s"].sum()
    return out.sort_values("total_s", ascending=False).reset_index()


def render(info: dict, table: pd.DataFrame, label: str, command: str) -> str:
    """The Markdown report, headed by the ``command`` that made it."""
    wall = (info["last"] - info["first"]).total_seconds() if info["first"] else float("nan")
    done, total = info["progress"] or (len(info["jobs"]), len(info["jobs"]))
    lines = [command, "", f"# Run time: {label}", "",
             f"From the Snakemake log of that run, in a checkout at commit {checkout_commit()}; written on "
             f"{machine()} (the run's machine when, as `make paper` does, this runs right after it).", "",
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
    if table["cpu_jobs"].sum():
        lines.append(f"- CPU seconds reported by the jobs' logs: {table['cpu_s'].sum():.0f} "
                     f"({table['cpu_jobs'].sum()} of {table['jobs'].sum()} jobs)")
    lines += ["", "| rule | jobs | job-seconds | share | median s | max s | CPU s (jobs reporting) | peak MiB |",
              "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        cpu = f"{r.cpu_s:.0f} ({r.cpu_jobs})" if r.cpu_jobs else "-"
        peak = f"{r.peak_mib:.0f}" if r.cpu_jobs else "-"
        lines.append(f"| {r.rule} | {r.jobs} | {r.total_s:.0f} | {r.share:.1%} | {r.median_s:.0f} | {r.max_s:.0f} "
                     f"| {cpu} | {peak} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, required=True, help="Snakemake output of the run (stdout + stderr).")
    ap.add_argument("--label", default="", help="What was run (config, cores, machine).")
    ap.add_argument("--output", type=Path, required=True, help="Markdown report; a .tsv of the table beside it.")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="Snakemake's working directory, where the job logs are (default: the log's folder).")
    args = ap.parse_args(argv)
    info = parse_log(args.log)
    if not info["jobs"]:
        ap.error(f"{args.log}: no finished job found in this log")
    table = per_rule(info["jobs"], args.workdir or args.log.resolve().parent)
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
