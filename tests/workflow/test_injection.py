"""No command injection through config values: names are validated before any job runs, and every other
value reaches the shell quoted (or not at all)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from conftest import snakemake
from scfactor.core.config import ConfigError, check_name

HOSTILE = [
    "x||touch${IFS}/tmp/PWNED||",
    "x;touch PWNED",
    "x&&touch PWNED",
    "$(touch PWNED)",
    "`touch PWNED`",
    "my data",
    "it's",
    'say"hi"',
    "two\nlines",
    "../escape",
    "-rf",
    "",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_unsafe_names_are_rejected(name):
    with pytest.raises(ConfigError, match="not a valid name"):
        check_name(f"datasets.{name}", name)


@pytest.mark.parametrize("name", ["kang", "PBMC_3k", "sample-01", "run.2", "A1"])
def test_safe_names_pass(name):
    assert check_name("datasets.x", name) == name


def _counts(path, batch_col="cond"):
    rng = np.random.default_rng(0)
    x = sp.csr_matrix(rng.poisson(2.0, size=(30, 12)).astype(np.int32))
    obs = pd.DataFrame({batch_col: ["a"] * 15 + ["b"] * 15}, index=[f"c{i}" for i in range(30)])
    ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(12)])).write_h5ad(path)
    return path


def _config(tmp_path, datasets) -> None:
    cfg = {"results": "results", "logs": "logs", "resources_dir": str(tmp_path / "res"), "datasets": datasets,
           "preprocess": {"n_hvg": 5}}
    (tmp_path / "res").mkdir(exist_ok=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.mark.workflow
def test_hostile_dataset_name_runs_nothing(tmp_path):
    """The reported config: rejected at parse time with one line naming the key; the command never runs."""
    sentinel = tmp_path / "PWNED"
    name = f"x||touch${{IFS}}{sentinel}||"
    _config(tmp_path, {name: {"path": str(_counts(tmp_path / "c.h5ad"))}})
    proc = snakemake(tmp_path, "--cores", "1", f"results/preprocess/{name}.h5ad", check=False)
    assert proc.returncode != 0
    assert "not a valid name" in proc.stderr and "datasets." in proc.stderr, proc.stderr[-2000:]
    assert not sentinel.exists()
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_metacharacters_in_values_stay_literal(tmp_path):
    """Names that pass, with paths and keys full of shell syntax: the job reads the literal path, or fails
    cleanly on a literal (non-existent) column; nothing is executed."""
    weird_dir = tmp_path / "my data; touch PWNED1 && $(touch PWNED2) `touch PWNED3` 'q'"
    weird_dir.mkdir()
    path = _counts(weird_dir / "counts $(touch PWNED4).h5ad")
    hostile_key = "cond$(touch PWNED5);touch PWNED6"
    _config(tmp_path, {"ok": {"path": str(path), "batch_key": "cond"},
                       "bad": {"path": str(path), "batch_key": hostile_key}})
    proc = snakemake(tmp_path, "--cores", "1", "--keep-going", "results/preprocess/ok.h5ad",
                     "results/preprocess/bad.h5ad", check=False)
    assert (tmp_path / "results" / "preprocess" / "ok.h5ad").exists(), proc.stderr[-3000:]
    assert proc.returncode != 0                                     # `bad` fails ...
    log = (tmp_path / "logs" / "preprocess" / "bad.log").read_text()
    assert f"has no obs column {hostile_key!r}" in log            # ... on the literal value
    assert "Trying to restart" not in proc.stdout + proc.stderr    # an input error fails once (no retry)
    assert not (tmp_path / "results" / "preprocess" / "bad.h5ad").exists()
    leaked = [p for p in tmp_path.rglob("PWNED*")]
    assert not leaked, leaked
