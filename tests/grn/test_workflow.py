"""The GRN rules end to end on the tiny config, and config errors caught before any job."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from conftest import snakemake


@pytest.mark.workflow
def test_workflow_tiny(tiny_run):
    cfg = yaml.safe_load((tiny_run / "config.yaml").read_text())
    names = list(cfg["grn"]["transitions"])
    summary = pd.read_csv(tiny_run / "results/grn/summary.tsv", sep="\t")
    assert sorted(summary["transition"]) == sorted(names)
    assert (summary["data:n_prior_edges"] > 0).all() and (summary["linear:fista_converged"] == 1).all()
    for n in names:
        edges = pd.read_csv(tiny_run / f"results/grn/{n}/edges.tsv", sep="\t")
        assert len(edges) > 0 and set(edges["prior_sign"]) <= {-1, 0, 1}
        assert (edges["weight"] != 0).any()
    for k in ("edges", "residuals", "signs"):
        assert (tiny_run / f"results/figures/grn/{names[0]}_{k}.png").stat().st_size > 10_000
        assert (tiny_run / f"results/figures/grn/{names[0]}_{k}.pdf").exists()
    kang = pd.read_csv(tiny_run / f"results/grn/{names[0]}/edges.tsv", sep="\t")
    assert kang["tf"].str.isupper().all()                      # human prior on human data
    panc = pd.read_csv(tiny_run / f"results/grn/{names[1]}/edges.tsv", sep="\t")
    assert not panc["tf"].str.isupper().all()                  # mouse prior (Pdx1-style symbols)


def test_bad_transition_name_fails_before_any_job(tiny_workdir):
    cfg = yaml.safe_load((tiny_workdir / "config.yaml").read_text())
    trans = cfg["grn"]["transitions"]
    trans["-bad name"] = trans.pop(next(iter(trans)))
    (tiny_workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tiny_workdir, "-n", check=False)
    assert proc.returncode != 0
    assert "-bad name" in proc.stdout + proc.stderr
    assert not (tiny_workdir / "results").exists()
