"""A user's own data, end to end: Cell Ranger-style folders, a sample sheet and a config of its own (nothing
bundled runs), through preprocessing, integration across the samples and the NB mixture to every figure;
and the example sheet + config of docs/own-data.md, which must dry-run once their folders exist."""

from __future__ import annotations

import re
import shutil

import anndata as ad
import pytest
import yaml

from conftest import REPO, snakemake
from tenx import barcodes, ensembl_ids, pbmc_samples, symbols, synthetic_counts, write_10x, write_10x_h5, write_sheet

#: names of the bundled data sets and simulations, none of which may appear in a user's run
BUNDLED = re.compile(r"kang|pancreas|pbmc3k|sim_|seed004|simulate|verify_resources|benchmark")


def _jobs(dry_run_stdout: str) -> dict:
    """Rule name -> count from the 'Job stats' table of a dry run."""
    lines = dry_run_stdout.split("Job stats:")[1].splitlines()[3:]   # after the header and the dashes
    jobs = {}
    for line in lines:
        m = re.fullmatch(r"(\S+)\s+(\d+)", line.strip())
        if not m:
            break
        jobs[m[1]] = int(m[2])
    jobs.pop("total", None)
    return jobs


def test_example_config_and_sheet_dry_run(tmp_path):
    """config/own-data.example.yaml with config/samples.example.tsv, its folders generated under tmp_path."""
    sheet = tmp_path / "samples.tsv"
    shutil.copy(REPO / "config" / "samples.example.tsv", sheet)
    for i, line in enumerate(ln for ln in sheet.read_text().splitlines()[1:] if ln and not ln.startswith("#")):
        name, path = line.split("\t")[:2]
        args = (synthetic_counts(30, 40, i), barcodes(30, i), ensembl_ids(40), symbols(40))
        (write_10x_h5 if path.endswith(".h5") else write_10x)(tmp_path / path, *args)
    cfg = yaml.safe_load((REPO / "config" / "own-data.example.yaml").read_text())
    assert cfg["datasets"]["mine"]["sheet"] == "/data/myproject/samples.tsv"
    cfg["datasets"]["mine"]["sheet"] = str(sheet)
    cfg["results"], cfg["logs"] = str(tmp_path / "results"), str(tmp_path / "logs")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n")
    jobs = _jobs(proc.stdout)
    assert {"preprocess", "integrate", "integrate_figures", "nbmix", "nbmix_leiden", "nbmix_figures"} <= set(jobs)
    assert not BUNDLED.search(proc.stdout), BUNDLED.search(proc.stdout)


@pytest.mark.workflow
def test_own_data_end_to_end(tmp_path):
    info = pbmc_samples(tmp_path / "cellranger", n_cells=150, n_genes=1500)
    sheet = write_sheet(tmp_path / "samples.tsv", [("donorA", "cellranger/donorA/outs/filtered_feature_bc_matrix",
                                                    "ctrl"),
                                                   ("donorB", "cellranger/donorB", "ctrl")],  # its run folder
                       header=("sample", "path", "condition"))
    cfg = {
        "results": "results", "logs": "logs",
        "datasets": {"mine": {"sheet": str(sheet), "make_unique": True}},
        "preprocess": {"min_genes": 50, "max_pct_mito": 20, "n_hvg": 300},
        "integrate": {"datasets": ["mine"], "k": 5, "max_iters": 5, "min_cells": 10, "knn_k": 10,
                      "n_neighbors": 10, "agreement_dims": 5, "agreement_k": 10, "threads": 1, "mem_mb": 2000},
        "nbmix": {"runs": {"mine": {"k": 3, "genes": "hvg"}}, "nrep": 1, "max_iters": 20, "leiden": {"n_pcs": 10}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    dry = snakemake(tmp_path, "-n")
    assert not BUNDLED.search(dry.stdout), f"a bundled data set is in the DAG: {BUNDLED.search(dry.stdout)}"
    assert set(_jobs(dry.stdout)) == {"preprocess", "report_config", "integrate", "integrate_figures", "nbmix",
                                      "nbmix_leiden", "nbmix_figures", "nbmix_summary", "all"}

    snakemake(tmp_path, "--cores", "2")
    res = tmp_path / "results"
    figures = [f"figures/qc/mine.{ext}" for ext in ("png", "pdf")]
    figures += [f"figures/integrate/mine.{kind}.{ext}" for kind in ("umap", "metrics") for ext in ("png", "pdf")]
    figures += [f"figures/nbmix/mine.{kind}.{ext}" for kind in ("umap", "correlation", "poisson_nb")
                for ext in ("png", "pdf")]
    figures += [f"figures/nbmix/summary.{ext}" for ext in ("png", "pdf")]
    for fig in figures:
        assert (res / fig).is_file() and (res / fig).stat().st_size > 1000, fig
    a = ad.read_h5ad(res / "preprocess" / "mine.h5ad")
    assert list(a.obs["batch"].cat.categories) == ["donorA", "donorB"]          # batches: the sheet's samples
    assert a.obs_names.is_unique
    assert sum(n.startswith("donorB_") for n in a.obs_names) <= info["n_shared_barcodes"]
    log = (tmp_path / "logs" / "preprocess" / "mine.log").read_text()
    assert f"{info['n_shared_barcodes']} barcodes occur in more than one sample" in log
    assert "made 1 duplicated gene names unique" in log
    assert "cellranger/donorB: a Cell Ranger output folder; reading its filtered matrix" in log
    integrated = ad.read_h5ad(res / "integrate" / "mine" / "counts.h5ad")
    assert set(integrated.obs["batch"].astype(str)) == {"donorA", "donorB"}
