"""Writing a benchmark's results: ``<out>.tsv`` and ``<out>.md``, each headed by the exact command."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path


def command_line(script: str) -> str:
    """``python <script relative to the repository> <this process's arguments>``: the results' first line."""
    repo = Path(__file__).resolve().parents[1]
    return "python " + shlex.join([str(Path(script).resolve().relative_to(repo)), *sys.argv[1:]])


def checkout_commit(where=".") -> str:
    """Short commit of the git checkout ``where`` (``+dirty`` if tracked files other than the results files under
    ``benchmarks/results`` differ from it: a run's own outputs, such as `make paper` writes, do not count), or
    ``unknown``."""
    def git(*args):
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                          ":(exclude)benchmarks/results") else "")


def run_conditions(load_before: float, where=".") -> str:
    """The sentence on what a timed benchmark ran on: the code's commit (`checkout_commit`), the 1-minute load
    average ``load_before`` the first run and now, after the last, and the machine's cores."""
    return (f"Code {checkout_commit(where)}; load average {load_before:.2f} before the first run and "
            f"{os.getloadavg()[0]:.2f} after the last, {os.cpu_count()} cores.")


def machine(cpuinfo="/proc/cpuinfo") -> str:
    """The processor the benchmark ran on, from ``cpuinfo`` (model name, family / model, clock, cache, AVX-512) and
    the cores visible: the same code ran up to twice as fast on some days as on others on this project's virtual
    machines, so results name the host's processor to be compared like with like."""
    fields = {}
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return f"processor unknown, {os.cpu_count()} cores"
    avx512 = "yes" if "avx512f" in fields.get("flags", "").split() else "no"
    return (f"{fields.get('model name', 'unknown')} (family {fields.get('cpu family', '?')}, model "
            f"{fields.get('model', '?')}), {fields.get('cpu MHz', '?')} MHz, cache {fields.get('cache size', '?')}, "
            f"AVX-512 {avx512}, {os.cpu_count()} cores")


def write_results(out, command: str, table, intro: str, floatfmt: str = ".6g") -> None:
    """``out``.tsv (``# command`` then the table) and ``out``.md (command, ``intro``, the processor it ran on
    (`machine`), the table as markdown)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".tsv"), "w") as fh:
        fh.write(f"# {command}\n")
        table.to_csv(fh, sep="\t", index=False, float_format="%.6g")
    out.with_suffix(".md").write_text("\n".join([command, "", intro, "", f"Processor: {machine()}.", "",
                                                  table.to_markdown(index=False, floatfmt=floatfmt), ""]))


def write_summary_and_runs(out, command: str, summary, runs, intro: str, floatfmt: str = ".6g") -> None:
    """`write_results` of ``summary``, then ``out``_runs.tsv (``# command`` then every run) and every run
    appended to ``out``.md."""
    write_results(out, command, summary, intro, floatfmt=floatfmt)
    out = Path(out)
    with open(f"{out}_runs.tsv", "w") as fh:
        fh.write(f"# {command}\n")
        runs.to_csv(fh, sep="\t", index=False, float_format="%.8g")
    with open(out.with_suffix(".md"), "a") as fh:
        fh.write("\nEvery run:\n\n" + runs.to_markdown(index=False, floatfmt=floatfmt) + "\n")
