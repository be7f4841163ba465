"""The nbmix part of the tiny-config run (tests/tiny_config.yaml): summary, figures, the baseline's UMAP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.mark.workflow
def test_workflow_tiny(tiny_run):
    summ = pd.read_csv(tiny_run / "results/nbmix/summary.tsv", sep="\t")
    sim = summ[(summ.dataset == "seed004_tiny") & (summ.method == "nbmix_em")].iloc[0]
    assert sim.accuracy_hungarian == 1.0 and sim.ari == 1.0
    ref = summ[(summ.dataset == "pbmc3k") & (summ.method == "nbmix_em")].iloc[0]
    assert "not ground truth" in ref.label_kind
    assert np.isnan(ref.accuracy_majority) and 0 < ref.nmi <= 1
    assert set(summ.method) == {"nbmix_em", "leiden"}
    for f in ["seed004_tiny.umap.pdf", "pbmc3k.correlation.png", "summary.png", "pbmc3k.poisson_nb.png"]:
        assert (tiny_run / "results/figures/nbmix" / f).stat().st_size > 5000
    import anndata as ad
    lei = ad.read_h5ad(tiny_run / "results/nbmix/pbmc3k/leiden.h5ad")
    assert lei.obsm["X_umap"].shape == (lei.n_obs, 2) and "leiden" in lei.obs
