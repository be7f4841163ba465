"""A real single-node SLURM scheduler for the cluster tests, and helpers to run Snakemake through a profile.

`slurm_cluster` (session fixture) uses a cluster that already answers (``SLURM_CONF`` pointing at it, or
one left running by ``tests/cluster/local_slurm.sh start``) and otherwise starts one with that script;
at the end of the session it stops exactly the daemons it started. Import it into a test module with
``from cluster.slurm import slurm_cluster  # noqa: F401``.

Without root and without a running cluster the tests are skipped with the reason, unless
``SCFACTOR_REQUIRE_SLURM=1`` (then they fail).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPT = HERE / "local_slurm.sh"
STATE = Path(os.environ.get("SCFACTOR_SLURM_STATE", "/tmp/scfactor-slurm"))
CONF = Path(os.environ.get("SCFACTOR_SLURM_CONF_DIR", "/etc/slurm")) / "slurm.conf"

# test-only speed-ups on top of a profile: poll every 2 s (the profile's 40 s suits a real cluster),
# keep the SLURM logs of successful jobs too, and log each sbatch command line (--verbose).
FAST = ("--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs",
        "--latency-wait", "5", "--verbose")


@dataclass
class SlurmCluster:
    """A reachable SLURM controller: the environment clients need, and what this session started."""

    env: dict
    started: list = field(default_factory=list)

    def run(self, *cmd, check=True, timeout=60) -> subprocess.CompletedProcess:
        """Run a SLURM client command (squeue, scancel, scontrol ...) against this cluster."""
        proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, cmd))} failed: {proc.stderr}")
        return proc

    def jobs(self, comment_prefix: str = "", workdir=None) -> list[dict]:
        """Queued / running jobs as dicts (id, state, comment, workdir), optionally only those whose comment
        (the plugin sets ``rule_<rule>_wildcards_<wildcards>``) starts with ``comment_prefix`` and that run in
        ``workdir`` (tests running at the same time share the cluster and the same rule names)."""
        out = self.run("squeue", "-h", "-o", "%i|%T|%k|%Z").stdout
        rows = [dict(zip(("id", "state", "comment", "workdir"), ln.split("|", 3))) for ln in out.splitlines() if ln]
        return [r for r in rows if r["comment"].startswith(comment_prefix)
                and (workdir is None or Path(r["workdir"]).resolve() == Path(workdir).resolve())]

    def jobs_running(self, rule: str, wildcards: str, workdir) -> list[dict]:
        """Queued / running jobs in ``workdir`` whose batch script runs the Snakemake job ``rule`` with
        ``wildcards`` (``run=sim,tissue=tissue1,...``), alone or inside a job group (a group's comment names
        no wildcards, so the job's own script is read)."""
        target = f"'{rule}:{wildcards}'"
        return [r for r in self.jobs(workdir=workdir)
                if target in self.run("scontrol", "write", "batch_script", r["id"], "-", check=False).stdout]


def _answers(env) -> bool:
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15,
                              env={**os.environ, **env}).returncode == 0 and \
            subprocess.run(["sinfo", "-h"], capture_output=True, timeout=15,
                           env={**os.environ, **env}).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def _unavailable(reason: str):
    if os.environ.get("SCFACTOR_REQUIRE_SLURM") == "1":
        pytest.fail(f"SLURM required (SCFACTOR_REQUIRE_SLURM=1) but unavailable: {reason}")
    pytest.skip(f"no SLURM scheduler: {reason}")


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node SLURM (partitions cpu, gpu, tpu); stops only the daemons it started."""
    if os.environ.get("SCFACTOR_SLURM_UNAVAILABLE"):     # tests/run_parallel.py tried to start it
        _unavailable(os.environ["SCFACTOR_SLURM_UNAVAILABLE"])
    if os.environ.get("SLURM_CONF") and _answers({}):
        yield SlurmCluster(env={"SLURM_CONF": os.environ["SLURM_CONF"]})   # someone else's: left alone
        return
    env = {"SLURM_CONF": str(CONF), "SCFACTOR_SLURM_STATE": str(STATE)}
    try:
        started = start_local_cluster(env)
    except SlurmUnavailable as e:
        _unavailable(str(e))
    try:
        yield SlurmCluster(env=env, started=started)
    finally:
        stop_local_cluster(env, started)


class SlurmUnavailable(RuntimeError):
    """The local cluster could not be started (the message says why)."""


def start_local_cluster(env: dict) -> list[str]:
    """Start (or reuse) the local cluster with tests/cluster/local_slurm.sh; returns the daemons this call
    started, for `stop_local_cluster`. Raises `SlurmUnavailable` with the reason."""
    if os.geteuid() != 0 and not _answers(env):
        raise SlurmUnavailable("not root (tests/cluster/local_slurm.sh installs and starts slurm-wlm + munge as root)")
    proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=900,
                          env={**os.environ, **env})
    if proc.returncode != 0:
        raise SlurmUnavailable(f"tests/cluster/local_slurm.sh start failed:\n{proc.stderr[-3000:]}")
    return [d for d in proc.stdout.strip().splitlines()[-1].removeprefix("started=").split(",") if d]


def stop_local_cluster(env: dict, started: list[str]) -> None:
    """Stop exactly the daemons `start_local_cluster` started (none: a cluster that was already running)."""
    if started:
        subprocess.run(["bash", str(SCRIPT), "stop", ",".join(started)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, **env})


# ------------------------------------------------------------------------------------------------
# reading what the Snakemake SLURM plugin did

# a job's Snakemake id is a number, a job group's a UUID
_SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


@dataclass
class Submission:
    """One sbatch call the plugin made (from its ``sbatch call:`` debug line): a single job, or a job group
    (``group`` names it) that runs several Snakemake jobs in one allocation."""

    rule: str
    wildcards: str
    args: list
    group: str = ""
    #: the Snakemake jobs this submission runs, as (rule, wildcards joined by "_", as in the plugin's comment)
    jobs: list = field(default_factory=list)

    def opt(self, name: str):
        """Value of an sbatch option (``--mem``, ``-p``, ``--gpus`` ...) or None."""
        for i, a in enumerate(self.args):
            if a == name and i + 1 < len(self.args):
                return self.args[i + 1]
            if a.startswith(name + "="):
                return a.split("=", 1)[1]
        return None


def _target_jobs(wrap: str) -> list[tuple[str, str]]:
    """(rule, wildcard values joined by "_") of each ``--target-jobs`` entry in a job's command line."""
    words = shlex.split(wrap)
    start = words.index("--target-jobs") + 1
    jobs = []
    for w in words[start:]:
        if w.startswith("--"):
            break
        rule, _, wc = w.partition(":")
        jobs.append((rule, "_".join(kv.split("=", 1)[1] for kv in wc.split(",") if kv)))
    return jobs


def submissions(log_text: str) -> list[Submission]:
    """Every sbatch call in a ``snakemake --verbose`` log, in order."""
    subs = []
    for line in log_text.splitlines():
        if "sbatch call: sbatch " not in line:
            continue
        call = line.split("sbatch call: ", 1)[1]
        head, _, wrap = call.partition(" --wrap=")
        args = shlex.split(head)[1:]
        jobs = _target_jobs(shlex.split(wrap)[0])
        out = Submission("", "", args).opt("--output") or ""
        grp = re.search(r"/group_([^/]+)/", out)
        if grp:              # comment rule_<group>_<rules>: the jobs come from the command line
            rules = sorted({r for r, _ in jobs})
            subs.append(Submission("+".join(rules), "", args, group=grp.group(1), jobs=jobs))
            continue
        comment = Submission("", "", args).opt("--comment") or ""
        m = re.match(r"rule_(.+?)(?:_wildcards_(.*))?$", comment)
        assert m, f"sbatch call without the plugin's rule comment: {call[:300]}"
        subs.append(Submission(m.group(1), m.group(2) or "", args, jobs=[(m.group(1), m.group(2) or "")]))
    return subs


def submitted_jobs(log_text: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every Snakemake job sent to SLURM, alone or in a group, in submission order."""
    return [j for s in submissions(log_text) for j in s.jobs]


def reported_cancelled(log_text: str, job_id: str, workdir: Path) -> bool:
    """Whether Snakemake reported SLURM job ``job_id`` as failed because it was cancelled: a single job by
    the plugin's status line, a job group by "Error in group" naming the job's SLURM log, which holds
    slurmstepd's CANCELLED line (no log at all when the job was cancelled before it started)."""
    if re.search(rf"SLURM-job '{job_id}' failed, SLURM status is: 'CANCELLED'", log_text):
        return True
    m = re.search(rf"Error in group \S+\n\s+log: (\S+/{job_id}\.log)", log_text)
    if not m:
        return False
    slurm_log = workdir / m.group(1)
    return not slurm_log.exists() or re.search(rf"JOB {job_id} ON \S+ CANCELLED", slurm_log.read_text()) is not None


def submitted_jobids(log_text: str) -> list[str]:
    """SLURM job ids the plugin reported as submitted."""
    return [m.group(2) for m in _SUBMITTED.finditer(log_text)]


def job_stats(log_text: str) -> dict[str, int]:
    """The first 'Job stats' table of a Snakemake log as {rule: count} (without 'total')."""
    lines = log_text.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip().startswith("Job stats"))
    except StopIteration:
        return {}
    stats = {}
    for ln in lines[start + 3:]:
        parts = ln.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            stats[parts[0]] = int(parts[1])
    return stats


def wait_for(predicate, timeout=300, every=1.0, what="condition"):
    """Poll ``predicate()`` until it returns something truthy; return it (AssertionError on timeout)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# ------------------------------------------------------------------------------------------------
# running Snakemake

def profile(name: str) -> str:
    """Absolute path of profiles/<name>."""
    return str(REPO / "profiles" / name)


def write_tiny_workdir(path: Path, **overrides) -> Path:
    """A working directory holding the tiny test config (with ``overrides`` merged at top level)."""
    import yaml

    from conftest import load_tiny_config

    path.mkdir(parents=True, exist_ok=True)
    cfg = load_tiny_config()
    cfg.update(overrides)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def file_digests(root: Path, sub: str = "results") -> dict[str, str]:
    """{relative path: sha256} of every file under ``root/sub``."""
    import hashlib

    base = Path(root) / sub
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(base.rglob("*")) if p.is_file()}


#: ``uns`` keys that record how long a step ran (they differ on every run); every other key is compared
IGNORED_UNS_KEYS = frozenset({"seconds", "cpu_seconds", "train_seconds", "samples_per_s"})
TRAINING_STATE = re.compile(r"(\.ckpt|/checkpoints)(/|$)")     # training state, not results


def values_equal(a, b) -> bool:
    """Equality of ``uns`` entries, element by element: dicts key by key (`IGNORED_UNS_KEYS` aside), float
    arrays with NaN == NaN, object arrays element-wise; never through their (truncated) text."""
    import numpy as np
    import pandas as pd

    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return False
        keys = (a.keys() | b.keys()) - IGNORED_UNS_KEYS
        return all(k in a and k in b and values_equal(a[k], b[k]) for k in keys)
    if isinstance(a, pd.DataFrame) or isinstance(b, pd.DataFrame):
        return isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame) and a.equals(b)
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape:
        return False
    if x.dtype.kind in "fc" and y.dtype.kind in "fc":
        return bool(np.array_equal(x, y, equal_nan=True))
    if x.dtype.kind == "O" or y.dtype.kind == "O":
        if x.ndim == 0:                      # a single Python object (None, a string, a number)
            return bool(a == b) or (a != a and b != b)
        return all(values_equal(p, q) for p, q in zip(x.ravel().tolist(), y.ravel().tolist()))
    return bool(np.array_equal(x, y))


def same_h5ad(p: Path, q: Path) -> bool:
    import anndata as ad
    import numpy as np
    import scipy.sparse as sp

    def dense(x):
        return x.toarray() if sp.issparse(x) else np.asarray(x)

    def same(x, y) -> bool:       # NaN (e.g. cells without an embedding) equals NaN
        x, y = dense(x), dense(y)
        return x.shape == y.shape and bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))

    a, b = ad.read_h5ad(p), ad.read_h5ad(q)
    if a.shape != b.shape or not (a.obs.equals(b.obs) and a.var.equals(b.var)):
        return False
    if (a.X is None) != (b.X is None) or (a.X is not None and not same(a.X, b.X)):
        return False
    for x, y in ((a.layers, b.layers), (a.obsm, b.obsm), (a.varm, b.varm)):
        if set(x.keys()) != set(y.keys()) or not all(same(x[k], y[k]) for k in x):
            return False
    return values_equal(dict(a.uns), dict(b.uns))


def different_results(a, b, sub: str = "results", a_is_subset: bool = False) -> list[str]:
    """Files under ``sub`` that differ between two working directories (or exist in only one).

    Byte equality for every file, except: PDFs are compared without their ``/CreationDate``, and
    ``.h5ad`` files by content (matrices, obs, var, obsm, varm, layers, and uns without the run-time keys
    listed in `IGNORED_UNS_KEYS`), since some steps record how long they ran. Training
    checkpoints (``*.ckpt/``, ``checkpoints/``) are state, not results, and are skipped. With
    ``a_is_subset`` a run of fewer targets is compared: files only in ``b`` are allowed.
    """
    a, b = Path(a), Path(b)
    fa = {str(p.relative_to(a)) for p in (a / sub).rglob("*") if p.is_file() and not TRAINING_STATE.search(str(p))}
    fb = {str(p.relative_to(b)) for p in (b / sub).rglob("*") if p.is_file() and not TRAINING_STATE.search(str(p))}
    bad = sorted(fa - fb) if a_is_subset else sorted(fa ^ fb)
    for rel in sorted(fa & fb):
        x, y = (a / rel).read_bytes(), (b / rel).read_bytes()
        if x == y:
            continue
        if rel.endswith(".pdf"):
            strip = re.compile(rb"/CreationDate \(D:[0-9Z+\-']*\)")
            if strip.sub(b"", x) == strip.sub(b"", y):
                continue
        elif rel.endswith(".h5ad") and same_h5ad(a / rel, b / rel):
            continue
        bad.append(rel)
    return bad


def snakemake_cmd(workdir, *args) -> list[str]:
    """The command line conftest.snakemake runs, for use with Popen."""
    import sys

    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--configfile", str(Path(workdir) / "config.yaml"), *map(str, args)]


def snakemake_env(cluster: SlurmCluster | None = None, **extra) -> dict:
    """Environment for a Snakemake run: the venv first on PATH, the cluster's SLURM_CONF, ``extra``."""
    import sys

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if cluster is not None:
        env.update(cluster.env)
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Background:
    """A Snakemake run in the background (for killing or requeueing one of its jobs mid-run)."""

    def __init__(self, workdir, *args, env: dict, log_name="snakemake.log"):
        self.log_path = Path(workdir) / log_name
        self._fh = open(self.log_path, "w")
        self.proc = subprocess.Popen(snakemake_cmd(workdir, *args), cwd=workdir, env=env,
                                     stdout=self._fh, stderr=subprocess.STDOUT, text=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()          # never leave a Snakemake (and its SLURM jobs) behind, whatever happened
        return False

    def running(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        """Interrupt Snakemake (it cancels the SLURM jobs it submitted) and wait for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._fh.closed:
            self._fh.close()

    def wait(self, timeout=600) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"snakemake did not finish in {timeout}s:\n{self.text()[-4000:]}") from None
        self._fh.close()
        return rc
