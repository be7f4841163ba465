"""The multilayer NMF rules on the tiny config: outputs of the shared tiny run, config errors before any job."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import snakemake
from scfactor.core import io

TARGETS = ["results/layers/sim_blocks.metrics.tsv", "results/figures/layers/sim_blocks_theta_l1.png",
           "results/figures/layers/sim_blocks_beta_l2.png"]


@pytest.mark.workflow
def test_workflow_tiny(tiny_run):
    m = pd.read_csv(tiny_run / "results/layers/sim_blocks.metrics.tsv", sep="\t").set_index("metric")["value"]
    assert m["n_cells"] == 120 and m["n_genes"] == 200
    assert m["beta_match_corr_l2"] > 0.8, m
    fit = io.read_h5ad(tiny_run / "results/layers/sim_blocks.h5ad")
    assert fit.uns["theta_l1"].shape == (120, 6) and fit.varm["beta_l2"].shape == (200, 4)
    for t in TARGETS[1:]:
        assert (tiny_run / t).read_bytes()[:4] == b"\x89PNG"
        assert (tiny_run / t).with_suffix(".pdf").exists()
    assert (tiny_run / "results/simulate/blocks.h5").exists()


@pytest.mark.workflow
def test_workflow_bad_config_fails_before_jobs(tiny_workdir):
    import yaml
    cfg = yaml.safe_load((tiny_workdir / "config.yaml").read_text())
    cfg["layers"]["datasets"] = ["nope"]
    (tiny_workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tiny_workdir, "-n", check=False)
    assert proc.returncode != 0 and "layers.datasets: unknown dataset 'nope'" in proc.stdout + proc.stderr
    cfg["layers"]["datasets"] = ["sim_blocks"]
    cfg["layers"]["solver"] = "lsq"
    (tiny_workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tiny_workdir, "-n", check=False)
    assert proc.returncode != 0 and "config key layers.solver: 'lsq' is not one of" in proc.stdout + proc.stderr
    assert not (tiny_workdir / "results").exists()
