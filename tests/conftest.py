"""Shared fixtures: repository paths, the tiny config in a temporary working directory, a Snakemake runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
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


def run_script(name, *args, timeout=600):
    """Run workflow/scripts/<name> with arguments; return the CompletedProcess (never raises)."""
    e = dict(os.environ)
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=e)


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
    workdir = tmp_path_factory.mktemp("tiny_run")
    (workdir / "config.yaml").write_text(yaml.safe_dump(load_tiny_config(), sort_keys=False))
    snakemake(workdir, "--cores", "2")
    return workdir
