#!/usr/bin/env python
"""Run the test suite as four pytest processes at once (what `make test` does).

Most of the real-SLURM tests' wall time is waiting: for sbatch, for the scheduler, for the plugin's status
polls. Run one after the other, the suite took 17 minutes on 2 cores; here the SLURM tests run in two
processes beside the rest of the suite:

    stream 1  tests/cluster/test_tiny_run.py (the tiny targets through SLURM, single-shard reruns)
    stream 2  tests/cluster/test_shards.py, test_profiles.py, test_preempt.py, the memory retry of
              test_tiny_run.py
    stream 3  tests/workflow/test_storage.py (part of the tiny DAG on object storage; its own S3 server),
              tests/densify (NeuMF training, the prediction fan-out), and the fan-out through SLURM of
              test_tiny_run.py
    stream 4  everything else (unit, workflow, own-data tests)

Shared between the streams, so that nothing is set up twice or torn down under another stream:
  - one SLURM cluster (tests/cluster/local_slurm.sh), started here and stopped at the end; when it cannot
    be started, SCFACTOR_SLURM_UNAVAILABLE carries the reason to the tests (skip, or fail under
    SCFACTOR_REQUIRE_SLURM=1);
  - one run of the tiny config (the `tiny_run` fixture, made by the first stream that needs it under a file
    lock, SCFACTOR_TINY_RUN).

Each stream's output goes to a log file, printed in full when the stream ends; the exit status is the
first failing stream's (pytest's own codes; 5, no test collected, is an error). Extra arguments are passed
to every pytest process, e.g. `python tests/run_parallel.py -x`. A single pytest run (`pytest`) still
works and runs everything in one process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from cluster.slurm import CONF, STATE, SlurmUnavailable, start_local_cluster, stop_local_cluster  # noqa: E402
MEMORY_RETRY = "tests/cluster/test_tiny_run.py::test_memory_retry_attempt2_asks_for_more"
DENSIFY_FAN_OUT = "tests/cluster/test_tiny_run.py::test_densify_fan_out_through_sbatch"
STREAMS = {     # balanced by their measured durations (README, Tests)
    "slurm-tiny": ["tests/cluster/test_tiny_run.py", f"--deselect={MEMORY_RETRY}", f"--deselect={DENSIFY_FAN_OUT}"],
    "slurm-shards": ["tests/cluster/test_shards.py", "tests/cluster/test_profiles.py", "tests/cluster/test_preempt.py",
                     MEMORY_RETRY],
    "storage": ["tests/workflow/test_storage.py", "tests/densify", DENSIFY_FAN_OUT],
    "rest": ["tests", "--ignore=tests/cluster", "--ignore=tests/workflow/test_storage.py", "--ignore=tests/densify"],
}


def main(argv: list[str]) -> int:
    """Run the streams, print their logs, return the suite's exit status."""
    work = Path(tempfile.mkdtemp(prefix="scfactor-tests-"))
    env = {**os.environ, "SCFACTOR_TINY_RUN": str(work / "tiny_run")}
    slurm_env = {"SLURM_CONF": str(CONF), "SCFACTOR_SLURM_STATE": str(STATE)}
    started = []
    try:
        started = start_local_cluster(slurm_env)
        env.update(slurm_env)          # the streams' fixtures find it answering and leave it alone
    except SlurmUnavailable as e:      # every SLURM test reports this reason (skip, or fail when required)
        env["SCFACTOR_SLURM_UNAVAILABLE"] = str(e)
    procs = {}
    t0 = time.time()
    try:
        for name, paths in STREAMS.items():
            log = open(work / f"{name}.log", "w")
            cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--durations=15", *paths, *argv]
            procs[name] = (subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), log)
            print(f"[tests] started {name}: {' '.join(cmd[1:])}", flush=True)
        codes = {}
        while len(codes) < len(procs):
            for name, (proc, log) in procs.items():
                if name not in codes and proc.poll() is not None:
                    codes[name] = proc.returncode
                    log.close()
                    print(f"\n[tests] ===== {name}: exit {proc.returncode} after {time.time() - t0:.0f} s =====",
                          flush=True)
                    print((work / f"{name}.log").read_text(), flush=True)
            time.sleep(1)
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
        stop_local_cluster(slurm_env, started)
        shutil.rmtree(work, ignore_errors=True)
    print(f"[tests] all streams done in {time.time() - t0:.0f} s: "
          + ", ".join(f"{n} exit {c}" for n, c in codes.items()), flush=True)
    bad = [c for c in codes.values() if c != 0]
    if any(c == 5 for c in bad):
        print("error: a test stream collected no tests", file=sys.stderr)
    return bad[0] if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
