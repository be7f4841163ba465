"""The notebook's file layout: the simulator writes it deterministically, the readers check it."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from scfactor.core.config import ConfigError
from scfactor.core.errors import InputError, ScfactorError
from scfactor.mtl import layout as L
from scfactor.mtl.cli import SIMULATE
from scfactor.mtl.simulate import simulate_layout

from .conftest import SMALL, copy_layout, sha


def test_simulator_deterministic_and_layout(layout, tmp_path):
    root, _ = layout
    again = simulate_layout(tmp_path / "again", SIMULATE.defaults(**SMALL))
    for rel in ("rpkm.hdf5", "velo.hdf5", "tf_activity/mean_tf/tissue1.csv", "tf_list.csv", "truth/genes.tsv"):
        assert sha(root / rel) == sha(again / rel), rel
    # the notebook's own reading code (step 2) works on the files
    with h5py.File(root / "velo.hdf5", "r") as f:
        assert sorted(f.keys()) == ["tissue1", "tissue2"]
        v = np.array(f["tissue1"]["velo"])
        assert v.shape == (300, 8) and np.isnan(v).any() and not np.isnan(v).all()
    act = pd.read_csv(root / "tf_activity/mean_tf/tissue1.csv", index_col=0).transpose()
    assert act.shape == (8, 12) and act.isna().any().any()          # missing entries are empty, read as NaN
    assert "Ensembl ID" in pd.read_csv(root / "tf_list.csv", index_col=0).columns
    d = L.load_tissue(root, "tissue1")
    assert d.expr.shape == (300, 12) and d.velo.shape == (300, 8) and d.act_mean.shape == (8, 12)
    assert d.in_activity.all() and (d.expr >= 0).all()
    truth = pd.read_csv(root / "truth/genes.tsv", sep="\t")
    assert set(truth["cluster"]) == {0, 1}
    # planted support is visible in the activity tables: each gene's strongest TFs are its cluster's
    with h5py.File(root / "truth" / "maps.h5", "r") as f:
        support, labels = f["tissue1"]["support"][()], f["tissue1"]["labels"][()]
    genes = truth.loc[truth["tissue"] == "tissue1", "gene_symbol"].tolist()
    act1 = act.loc[genes].fillna(0.0).to_numpy()                     # genes x TFs, simulation order
    assert support.shape == (2, 12) and support.sum(1).tolist() == [SMALL["support"]] * 2
    top = np.argsort(-act1, axis=1)[:, :SMALL["support"]]
    recovered = np.array([support[labels[g], top[g]].mean() for g in range(len(genes))])
    assert recovered.mean() >= 0.75, recovered
    assert set(truth.loc[truth["tissue"] == "tissue1", "cluster"]) == set(labels)


def test_simulator_rejects_more_clusters_than_genes(tmp_path):
    with pytest.raises(ScfactorError, match="planted-clusters 9 > --n-genes 8"):
        simulate_layout(tmp_path / "x", SIMULATE.defaults(**dict(SMALL, planted_clusters=9)))


def test_reader_errors_in_process(layout, tmp_path):
    root = copy_layout(layout[0], tmp_path / "l")
    with pytest.raises(InputError, match="has no tissue group 'nope'"):
        L.load_tissue(root, "nope")
    pd.DataFrame({"x": ["a"]}).to_csv(root / "tf_list.csv")
    with pytest.raises(InputError, match="Ensembl ID"):
        L.load_tissue(root, "tissue1")


def test_sanitised_tissue_names_are_safe_wildcards():
    assert L.sanitize_tissue("Ngn3 high EP") == "Ngn3_high_EP"
    assert L.sanitize_tissue("T cells (CD4+)") == "T_cells_CD4"
    with pytest.raises(ConfigError, match="not a valid name"):
        L.sanitize_tissue("(+)")
    with pytest.raises(ConfigError, match="not a valid name"):
        L.sanitize_tissue("_x")
