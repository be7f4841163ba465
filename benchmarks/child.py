"""Running one timed benchmark process: its environment (thread pools) and its wall, CPU and peak memory."""

from __future__ import annotations

import os
import shlex
import subprocess
import time

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def thread_env(threads: int = 1, **extra) -> dict:
    """This process's environment with every BLAS / OpenMP thread pool set to ``threads`` (plus ``extra``)."""
    return {**os.environ, **{v: str(threads) for v in THREAD_VARS}, **extra}


def run_child(cmd, env: dict, cwd=None) -> dict:
    """Run ``cmd`` to the end; its wall seconds, CPU seconds (user + system, from ``wait4``) and peak RSS (MB).

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
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}
