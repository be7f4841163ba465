"""Shared fixtures: repository paths, the tiny config in a temporary working directory, a Snakemake runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RESOURCES = REPO / "resources"


def absolutise(cfg: dict) -> dict:
    """Rewrite repo-relative paths (resources/...) in a config to absolute ones."""
    cfg = dict(cfg)
    cfg["resources_dir"] = str(REPO / cfg.get("resources_dir", "resources"))

    def fix(v):
        if isinstance(v, str) and v.startswith("resources/"):
            return str(REPO / v)
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return {k: (fix(v) if k != "resources_dir" else v) for k, v in cfg.items()}


def load_tiny_config() -> dict:
    """The tiny test config with absolute resource paths."""
    return absolutise(yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text()))


@pytest.fixture
def tiny_workdir(tmp_path):
    """A temporary working directory holding `config.yaml` (the tiny config)."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(load_tiny_config(), sort_keys=False))
    return tmp_path


def snakemake(workdir, *args, check=True, timeout=1800, env=None):
    """Run Snakemake on the repo's Snakefile in `workdir` with its `config.yaml`; return the CompletedProcess."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(Path(workdir) / "config.yaml"), *map(str, args)]
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}:{e.get('PATH', '')}"
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if env:
        e.update(env)
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=e)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


class CliResult:
    """What a step's CLI did in-process: exit code, captured stdout and stderr (like a CompletedProcess)."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_cli(step, *args) -> CliResult:
    """Run a step function (e.g. `scfactor.preprocess.cli.preprocess`) in-process as its script would.

    Goes through `scfactor.core.cli.run` (one-line errors, exit 2), so a bad input behaves exactly as on
    the command line, without starting an interpreter per case.
    """
    import contextlib
    import io as _io

    from scfactor.core.cli import run
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run(step, [str(a) for a in args])
        except SystemExit as exc:  # argparse: --help (0) or a bad option (2)
            code = exc.code if isinstance(exc.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


def step_command(step, *args) -> list[str]:
    """argv that runs step function ``step`` in a fresh interpreter (for tests that kill or time a job)."""
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'workflow')!r}); from scfactor.core.cli import run; "
            f"from {step.__module__} import {step.__name__}; sys.exit(run({step.__name__}))")
    return [sys.executable, "-c", code, *map(str, args)]


def error_lines(proc) -> list[str]:
    """The `error:` lines a failed script printed on stderr."""
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]


def assert_clean_failure(proc, *, mentions: str, outputs=()):
    """A bad input: non-zero exit, exactly one `error:` line naming `mentions`, no traceback, no outputs left."""
    assert proc.returncode != 0, proc.stderr
    errs = error_lines(proc)
    assert len(errs) == 1, proc.stderr[-3000:]
    assert mentions in errs[0], errs[0]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for out in outputs:
        out = Path(out)
        assert not out.exists(), f"partial output left behind: {out}"
        leftovers = list(out.parent.glob(f".{out.name}.*")) if out.parent.exists() else []
        assert not leftovers, f"temporary files left behind: {leftovers}"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole tiny-config DAG run once per test session (2 cores); returns its working directory.

    Tests that only read final outputs share this run instead of re-running their part of the DAG.
    """
    shared = os.environ.get("SCFACTOR_TINY_RUN")
    if not shared:
        workdir = tmp_path_factory.mktemp("tiny_run")
        (workdir / "config.yaml").write_text(yaml.safe_dump(load_tiny_config(), sort_keys=False))
        snakemake(workdir, "--cores", "2")
        return workdir
    # tests/run_parallel.py: several pytest processes share one run; the first to get here makes it,
    # the others wait on the lock and read it
    import fcntl

    workdir = Path(shared)
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir.parent / f"{workdir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        failed = workdir / ".failed"
        if failed.exists():     # made and failed in another process: its error, not a second attempt
            pytest.fail(f"the shared tiny run failed in another test process:\n{failed.read_text()}")
        if not (workdir / ".complete").exists():
            (workdir / "config.yaml").write_text(yaml.safe_dump(load_tiny_config(), sort_keys=False))
            try:
                snakemake(workdir, "--cores", "2")
            except BaseException as e:     # includes pytest-timeout's interruption
                failed.write_text(f"{type(e).__name__}: {str(e)[-6000:]}")
                raise
            (workdir / ".complete").touch()
    return workdir
