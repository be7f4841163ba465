"""The integrate step at 12,000 cells: every k-NN graph of it (quantile normalisation's refinement, scanpy's
neighbours for UMAP, the SNN Leiden clustering, alignment and agreement) at a size beyond scanpy's
4096-cell switch to approximate neighbours. The online mode shares these steps (`pipeline.assemble`)."""

from __future__ import annotations

import anndata as ad
import pandas as pd
import pytest

from conftest import run_cli
from scfactor.core.metrics import ari
from scfactor.integrate.cli import SIMULATE, integrate


@pytest.mark.slow
def test_integrate_at_12000_cells(tmp_path):
    from scfactor.integrate.simulate import write_simulation
    sim = tmp_path / "sim.h5ad"
    write_simulation(SIMULATE.defaults(n_cells=(7000, 5000), n_genes=60, k_shared=4, k_specific=0, seed=3), sim)
    out, met = tmp_path / "out.h5ad", tmp_path / "m.tsv"
    proc = run_cli(integrate, "--input", sim, "--layer", "X", "--genes", "all", "--k", "4", "--max-iters", "30",
                   "--agreement-dims", "4", "--leiden-starts", "1", "--nrep", "1", "--device", "cpu",
                   "--output", out, "--metrics", met)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = ad.read_h5ad(out)
    assert a.obsm["X_inmf_norm"].shape == (12_000, 4) and a.obsm["X_umap"].shape == (12_000, 2)
    assert a.obsp["connectivities"].shape == (12_000, 12_000)
    t = pd.read_csv(met, sep="\t").set_index(["metric", "batch"])["value"]
    assert t[("n_labelled", "all")] == 12_000
    # quantile normalisation mixes the batches; clusters follow the planted groups, not the batches
    assert t[("alignment_raw", "all")] < t[("alignment", "all")] <= 2.0
    assert 0.0 < t[("agreement", "all")] <= 1.0
    label, batch = a.obs["label"].astype(str), a.obs["batch"].astype(str)
    for clusters in (a.obs["leiden"], a.obs["inmf_cluster"]):
        assert ari(label, clusters) > 0.6 > 10 * ari(batch, clusters)
