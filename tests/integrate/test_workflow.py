"""The integrate rules on the tiny config (simulator (c) -> preprocess -> integrate -> figures)."""

from __future__ import annotations

import anndata as ad
import pandas as pd
import pytest


@pytest.mark.workflow
def test_workflow_tiny_simulated(tiny_run):
    targets = [f"results/figures/integrate/sim_batches.{k}.png" for k in ("umap", "metrics")]
    for t in targets:
        assert (tiny_run / t).stat().st_size > 10_000
        assert (tiny_run / t).with_suffix(".pdf").exists()
    a = ad.read_h5ad(tiny_run / "results/integrate/sim_batches/counts.h5ad")
    assert list(a.obs["batch"].cat.categories) == ["b1", "b2"]
    assert a.n_obs == 280 and a.obsm["X_inmf"].shape[1] == 6
    assert a.obs["leiden"].nunique() >= 2
    t = pd.read_csv(tiny_run / "results/integrate/sim_batches/counts.metrics.tsv", sep="\t")
    t = t.set_index(["metric", "batch"])["value"]
    assert t[("alignment", "all")] > t[("alignment_raw", "all")]
    assert t[("n_labelled", "b1")] == 160 and t[("n_labelled", "b2")] == 120
    assert t[("ari", "all")] > 0.1
