"""Snakemake-level tests: config validation, lint, dry runs, and the tiny config's preprocessing end to end."""

from __future__ import annotations

import anndata as ad
import pandas as pd
import pytest
import yaml

import subprocess
import sys

from conftest import REPO, load_tiny_config, snakemake
from scfactor.core.config import ConfigError, validate_config


def test_lint_is_clean(tiny_workdir):
    proc = snakemake(tiny_workdir, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("cfg", ["config/config.yaml", "config/paper.yaml"])
def test_dry_run_builds_whole_dag(tmp_path, cfg):
    proc = snakemake(REPO, "-n", "--configfile", REPO / cfg, "--config", f"results={tmp_path}/r",
                     f"logs={tmp_path}/l", check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "preprocess" in proc.stdout and "verify_resources" in proc.stdout


def _subsample_keys(cfg, prefix=""):
    """Dotted paths of every key of a config that shrinks the input (max_* subsample limits)."""
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _subsample_keys(value, path + ".")
        elif key.startswith("max_") and key not in ("max_iter", "max_iters", "max_pct_mito", "max_thresh",
                                                      "max_rows", "max_missing"):
            yield path


def _lookup(cfg, dotted):
    for part in dotted.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def test_paper_config_lifts_every_default_subsample():
    """Snakemake loads config.yaml under paper.yaml: each subsample limit there must be reset to 0 (all data)."""
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    limits = list(_subsample_keys(default))
    assert limits, "no subsample key found in config/config.yaml"
    kept = [k for k in limits if _lookup(paper, k) != 0]
    assert not kept, f"config/paper.yaml keeps the default config's subsample for {kept}"


def _patched(patch: dict) -> dict:
    cfg = load_tiny_config()
    for dotted, value in patch.items():
        node, parts = cfg, dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return cfg


@pytest.mark.parametrize("patch, message", [
    ({"preprocess.n_hvg": -3}, "config key preprocess.n_hvg: -3 is less than the minimum of 1"),
    ({"preprocess.max_pct_mito": "lots"}, "config key preprocess.max_pct_mito: 'lots' is not of type 'number'"),
    ({"datasets.kang.format": "xlsx"}, "config key datasets.kang.format: 'xlsx' is not one of"),
    ({"unknown_section": {}}, "'unknown_section' was unexpected"),
    ({"nbmix.runs.pbmc3k.k": 4.0}, "config key nbmix.runs.pbmc3k.k: an integer is required"),
    ({"layers.epochs": 150.0}, "config key layers.epochs: an integer is required"),
    ({"nbmix.runs.a b": {"k": 3}}, "config key nbmix.runs.a b: 'a b' is not a valid name"),
    ({"grn.transitions.x;y": {"dataset": "kang", "source": {"labels": ["a"]}, "target": {"labels": ["b"]}}},
     "config key grn.transitions: 'x;y' does not match"),
    ({"integrate.datasets": ["kang", "$(id)"]}, "config key integrate.datasets[1]: '$(id)' is not a valid name"),
    ({"datasets.kang.batches": ["ctrl", "st im"]}, "config key datasets.kang.batches[1]: 'st im' is not a valid name"),
])
def test_bad_config_is_one_line_naming_the_key(patch, message):
    """Every check the workflow makes before any job, in-process (the same function common.smk calls)."""
    with pytest.raises(ConfigError) as exc:
        validate_config(_patched(patch))
    assert message in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def test_bad_config_stops_snakemake_before_any_job(tiny_workdir):
    """The same check through Snakemake: non-zero exit, the one line on the console, nothing run."""
    cfg = yaml.safe_load((tiny_workdir / "config.yaml").read_text())
    cfg["nbmix"]["runs"]["pbmc3k"]["k"] = 4.0
    (tiny_workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tiny_workdir, "-n", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "config key nbmix.runs.pbmc3k.k: an integer is required" in out, out[-3000:]
    assert not (tiny_workdir / "results").exists()


def test_no_config_is_a_clear_error(tmp_path):
    """The Snakefile loads no config of its own: without --configfile it says what to pass."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                           "-n"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "no config given" in proc.stdout + proc.stderr, proc.stdout[-2000:]


def test_demo_and_example_configs_validate():
    for name in ("config.yaml", "paper.yaml"):
        validate_config(yaml.safe_load((REPO / "config" / name).read_text()))


@pytest.mark.workflow
def test_tiny_preprocess_end_to_end(tiny_run):
    tiny_workdir = tiny_run
    res = tiny_workdir / "results"
    assert (res / "checks" / "resources.sha256.ok").read_text().count("OK ") >= 10
    a = ad.read_h5ad(res / "preprocess" / "kang.h5ad")
    assert a.obs["batch"].value_counts().to_dict() == {"ctrl": 150, "stim": 150}
    assert a.layers["counts"].dtype.kind == "i"
    assert a.obs["label"].notna().sum() > 50           # ctrl is labelled, stim mostly not
    assert a.var["liger_selected"].sum() > 50
    qc = pd.read_csv(res / "preprocess" / "kang.qc.tsv", sep="\t")
    assert qc["cells_kept"].tolist() == [150, 150]
    assert (res / "figures" / "qc" / "kang.png").read_bytes()[:4] == b"\x89PNG"
    p = ad.read_h5ad(res / "preprocess" / "pancreas.h5ad")
    assert {"spliced", "unspliced", "counts"} <= set(p.layers)
    assert (tiny_workdir / "logs" / "preprocess" / "kang.log").exists()


@pytest.mark.workflow
def test_corrupt_resource_is_caught(tmp_path, tiny_workdir):
    res = tmp_path / "res"
    res.mkdir()
    (res / "a.txt").write_text("tampered\n")
    (res / "SHA256SUMS").write_text("0" * 64 + "  a.txt\n")
    cfg = yaml.safe_load((tiny_workdir / "config.yaml").read_text())
    cfg["resources_dir"] = str(res)
    (tiny_workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tiny_workdir, "--cores", "1", "results/checks/resources.sha256.ok", check=False)
    assert proc.returncode != 0
    log = (tiny_workdir / "logs" / "verify_resources.log").read_text()
    assert "checksum mismatch" in log and "a.txt" in log
    assert not (tiny_workdir / "results" / "checks" / "resources.sha256.ok").exists()


def test_config_reference_is_up_to_date():
    from scfactor.core.config_docs import render
    assert (REPO / "config" / "README.md").read_text() == render(REPO / "workflow" / "schemas"), \
        "config/README.md is stale: run `make docs`"


@pytest.mark.workflow
def test_report_contains_every_figure(tiny_run):
    """After the tiny run, `snakemake --report` succeeds and holds every registered figure."""
    import zipfile
    report = tiny_run / "report.zip"
    snakemake(tiny_run, "--report", report)
    figures = sorted(p.relative_to(tiny_run) for p in (tiny_run / "results").rglob("*.png"))
    assert figures, "the tiny run made no figure"
    for png in figures:
        data = (tiny_run / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, f"{png} is not a real PNG"
    with zipfile.ZipFile(report) as z:
        names = z.namelist()
    for png in figures:
        assert any(n.endswith(png.name) for n in names), f"{png} missing from the report"
    assert any(n.endswith("config.tsv") for n in names)


def test_environment_pins_match_the_lock():
    """Every ``name==version`` of pyproject.toml and envs/*.yaml is requirements.lock's version (local build
    tags such as torch's ``+cpu`` aside), and every environment pins pynndescent: a resolver's newest (0.7)
    crashes scanpy's neighbours from 4096 cells on (docs/DESIGN.md, The environment)."""
    import re

    def norm(name):
        return re.sub(r"[-_.]+", "-", name.lower().split("[")[0])
    lock = {norm(n): v.split("+")[0] for n, v in
            (line.split("==") for line in (REPO / "requirements.lock").read_text().split() if "==" in line)}
    files = [REPO / "pyproject.toml", *sorted((REPO / "envs").glob("*.yaml"))]
    for path in files:
        pins = {norm(n): v for n, v in re.findall(r'([A-Za-z0-9_.\-\[\]]+)==([0-9][^\s",#]*)', path.read_text())}
        assert {n: v for n, v in pins.items() if lock.get(n) != v} == {}, path
        assert "pynndescent" in pins, path
