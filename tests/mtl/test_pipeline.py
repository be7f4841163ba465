"""Real-data inputs (steady-state velocity, prior TF activity) and the aggregation of shards."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scfactor.mtl.cli import TF_ACTIVITY, VELOCITY


def test_steady_state_velocity_recovers_gamma():
    from scfactor.mtl.velocity import steady_state_velocity
    rng = np.random.default_rng(0)
    s = rng.poisson(rng.gamma(2.0, 5.0, size=(400, 6)))
    gamma = np.array([0.2, 0.5, 1.0, 2.0, 0.3, 0.8])
    u = rng.poisson(s * gamma)
    velo, g, keep = steady_state_velocity(s, u, min_shared_counts=5, n_neighbors=5, n_pcs=3,
                                          perc=VELOCITY.defaults().perc, seed=0)
    assert keep.all() and velo.shape == (400, 6)
    # per-layer size normalisation rescales gamma; its ordering across genes is what must survive
    assert (np.argsort(g) == np.argsort(gamma)).all(), g
    assert np.isnan(velo[(s + u) == 0]).all() and not np.isnan(velo[(s + u) > 0]).any()


def test_prior_activity_tables():
    from scfactor.mtl.velocity import mouse_tf_symbols, prior_activity
    prior = pd.DataFrame({"tf": ["Sox9", "Sox9", "Pax6", "Foo"], "confidence": ["A", "C", "B", "A"],
                          "target": ["G1", "G2", "G1", "G1"], "mor": [1.0, -1.0, 1.0, 1.0]})
    orth = pd.DataFrame({0: ["SOX9", "PAX6", "XYZ"], 1: ["Sox9", "Pax6", None]})
    tfs = mouse_tf_symbols(["SOX9", "PAX6"], orth)
    assert tfs == {"Sox9", "Pax6"}
    mean, summ = prior_activity(prior, tfs, ["G1", "G2", "G3"], pd.Series({"Sox9": 10.0, "Pax6": 4.0}),
                                TF_ACTIVITY.defaults().confidence)
    assert list(mean.index) == ["Pax6", "Sox9"] and list(mean.columns) == ["G1", "G2", "G3"]
    assert mean.loc["Sox9", "G2"] == -0.5 and mean.loc["Pax6", "G1"] == 0.75 and mean["G3"].eq(0).all()
    assert summ.loc["Sox9", "G1"] == 10.0 and summ.loc["Pax6", "G1"] == 3.0


def test_aggregate_joins_the_lasso_of_the_same_split():
    from scfactor.mtl.pipeline import aggregate
    shard = pd.DataFrame({"tissue": "t", "gene": ["a", "b", "a", "b"], "cluster": 0, "rep": [0, 0, 1, 1],
                          "model": "tracenorm", "lambda": 0.01, "r2": [0.5, 0.1, 0.3, 0.1]})
    ab = shard.assign(model="lambda0", **{"lambda": 0.0, "r2": [0.1, 0.1, 0.1, 0.1]})
    lasso = pd.DataFrame({"tissue": "t", "gene_ensembl": ["a", "b", "a", "b"], "rep": [0, 0, 1, 1],
                          "r2": [0.2, 0.3, 0.4, 0.0]})
    table, summary = aggregate([shard, ab], [lasso])
    assert table.loc[(table["model"] == "tracenorm") & (table["rep"] == 1) & (table["gene"] == "a"),
                     "lasso_r2"].item() == 0.4
    s = summary.set_index("model")
    assert s.loc["tracenorm", "mean_r2"] == 0.25 and s.loc["tracenorm", "frac_above_lasso"] == 0.5
    assert s.loc["tracenorm", "mean_gain_vs_lambda0"] == 0.15 and np.isnan(s.loc["lambda0", "mean_gain_vs_lambda0"])


def test_knn_moments_at_12000_cells():
    """The velocity moments' k-NN graph at 12,000 cells: two planted, well-separated cell groups keep their
    neighbours within the group, so the moments of a group indicator are the indicator itself."""
    from scfactor.mtl.velocity import knn_moments
    rng = np.random.default_rng(0)
    n = 12_000
    group = rng.integers(0, 2, size=n)
    s = rng.poisson(np.where(group[:, None] == 1, 20.0, 1.0) * rng.uniform(0.5, 1.5, size=(1, 30))).astype(float)
    u = np.column_stack([group, rng.poisson(2.0, size=n)]).astype(float)
    ms, mu = knn_moments(s, u, n_neighbors=30, n_pcs=5, seed=0)
    assert ms.shape == s.shape and mu.shape == u.shape
    assert np.allclose(mu[:, 0], group)
    assert np.allclose(ms.mean(0), s.mean(0), rtol=0.05)      # a local average: means (nearly) preserved
    assert ms.var(0).sum() < s.var(0).sum()                    # ... and smoother than the counts
