"""Running one timed benchmark process: its environment (thread pools), the code it runs (the working tree or a
commit's `workflow/`) and its wall, CPU and peak memory."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: where `workflow_of` extracts a commit's workflow/ (under the ignored benchmarks/out/)
CODE_OUT = REPO / "benchmarks" / "out" / "code"

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def thread_env(threads: int = 1, **extra) -> dict:
    """This process's environment with every BLAS / OpenMP thread pool set to ``threads`` (plus ``extra``)."""
    return {**os.environ, **{v: str(threads) for v in THREAD_VARS}, **extra}


def workflow_of(commit: str | None) -> Path:
    """``workflow/`` of the working tree (``commit`` None), or of ``commit`` extracted once into `CODE_OUT`: its
    scripts (``workflow/scripts/*.py``) import the package beside them, so they run that commit's code."""
    if commit is None:
        return REPO / "workflow"
    full = subprocess.run(["git", "-C", str(REPO), "rev-parse", commit], check=True, capture_output=True,
                          text=True).stdout.strip()
    dest = CODE_OUT / full[:12]
    if not (dest / "workflow").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", full, "workflow"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "workflow"


def run_child(cmd, env: dict, cwd=None, stderr: bool = False) -> dict:
    """Run ``cmd`` to the end; its wall seconds, CPU seconds (user + system, from ``wait4``) and peak RSS (MB),
    with ``stderr`` its standard error text too (key ``stderr``).

    Exits with the command and the tail of its standard error if it fails.
    """
    cmd = [str(c) for c in cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed (exit {proc.returncode}):\n{err[-3000:]}")
    out = {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}
    return {**out, "stderr": err} if stderr else out
