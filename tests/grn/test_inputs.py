"""GRN inputs (scfactor.grn.inputs): priors, cell states, label transfer, optimal-transport pairing."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from grn.data import write_prior
from scfactor.core.errors import InputError
from scfactor.grn import inputs as gi


def test_read_prior_dorothea_signs_and_confidence(tmp_path):
    p = write_prior(tmp_path / "p.csv", [("T1", "A", "G1", 1.0), ("T1", "B", "G2", -1.0),
                                         ("T1", "D", "G3", 1.0), ("T2", "A", "G1", 1.0),
                                         ("T2", "C", "G1", -1.0), ("T2", "A", "T2", 1.0)])
    e = gi.read_prior(p, confidence=("A", "B", "C"))
    got = {(r.tf, r.target): r.sign for r in e.itertuples()}
    assert got == {("T1", "G1"): 1, ("T1", "G2"): -1, ("T2", "G1"): 0}   # D dropped, conflict -> 0, no self loop


def test_read_prior_trrust(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("TF\tTarget\tRegulation\tReference\nA\tB\tActivation\t1\nA\tC\tRepression\t2\n"
                 "A\tD\tUnknown\t3\nA\tB\tActivation\t4\n")
    e = gi.read_prior(p)
    assert list(e["sign"]) == [1, -1, 0] and list(e["target"]) == ["B", "C", "D"]


def test_bundled_priors_read():
    from conftest import RESOURCES
    hs = gi.read_prior(RESOURCES / "priors" / "dorothea_hs_ABC.csv")
    mm = gi.read_prior(RESOURCES / "priors" / "dorothea_mm_ABC.csv")
    assert "STAT1" in set(hs["tf"]) and "Pdx1" in set(mm["tf"])
    assert set(hs["sign"]) <= {-1, 0, 1} and (hs["sign"] == -1).any()


def test_ot_pairing_is_the_exact_optimum():
    rng = np.random.default_rng(0)
    za, zb = rng.normal(size=(6, 3)), rng.normal(size=(7, 3)) + 2
    ia, ib = gi.pair_cells(za, zb, "ot", 6, seed=1)
    assert len(set(ia)) == len(set(ib)) == 6
    best = min(sum(((za[ia[k]] - zb[ib[p[k]]]) ** 2).sum() for k in range(6))
               for p in itertools.permutations(range(6)))
    assert gi.pair_cost(za, zb, ia, ib) * 6 == pytest.approx(best)
    ra, rb = gi.pair_cells(za, zb, "random", 6, seed=1)
    assert gi.pair_cost(za, zb, ia, ib) <= gi.pair_cost(za, zb, ra, rb)
    assert np.array_equal(gi.pair_cells(za, zb, "random", 6, seed=1)[1], rb)


def test_transfer_labels_fills_from_neighbours():
    import anndata as ad
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (60, 20)), rng.normal(6, 1, (60, 20))]).astype(np.float32)
    lab = np.array(["a"] * 60 + ["b"] * 60, dtype=object)
    hidden = rng.random(120) < 0.5
    obs = pd.DataFrame({"label": pd.Categorical(np.where(hidden, None, lab))}, index=[f"c{i}" for i in range(120)])
    a = ad.AnnData(X=x, obs=obs)
    filled = gi.transfer_labels(a, k=5, n_pcs=5, min_agreement=0.6, seed=0)
    assert (filled.to_numpy() == lab).all()


def test_empty_state_error():
    obs = pd.DataFrame({"label": ["x", "y"], "batch": ["b", "b"]})
    with pytest.raises(InputError, match="is empty"):
        gi.select_state(obs, gi.StateSpec("A", ("z",)), "d.h5ad")


def test_transfer_labels_at_12000_cells():
    """Label transfer at 12,000 cells (half unlabelled; a tree over the labelled cells, queried in blocks)
    gives every hidden cell its planted group."""
    import anndata as ad
    rng = np.random.default_rng(1)
    n = 12_000
    lab = rng.choice(np.array(["a", "b", "c"], dtype=object), size=n)
    centre = {"a": 0.0, "b": 5.0, "c": 10.0}
    x = (rng.normal(0, 1, (n, 20)) + np.array([centre[v] for v in lab])[:, None]).astype(np.float32)
    hidden = rng.random(n) < 0.5
    obs = pd.DataFrame({"label": pd.Categorical(np.where(hidden, None, lab))}, index=[f"c{i}" for i in range(n)])
    filled = gi.transfer_labels(ad.AnnData(X=x, obs=obs), k=15, n_pcs=5, min_agreement=0.6, seed=0)
    assert (filled.to_numpy() == lab).all()
