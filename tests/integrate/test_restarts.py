"""Which iNMF restart is kept: lowest objective or the consensus (medoid) clustering."""

from __future__ import annotations

import dataclasses

import anndata as ad
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from scfactor.integrate import model, restarts

from .conftest import DEFAULTS


def _flip(labels, frac, rng):
    out = labels.copy()
    idx = rng.choice(len(out), int(frac * len(out)), replace=False)
    out[idx] = rng.integers(0, labels.max() + 1, len(idx))
    return out


def test_consensus_is_the_medoid_not_the_lowest_objective():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 400)
    clusterings = [rng.integers(0, 4, 400), truth, _flip(truth, 0.05, rng), _flip(truth, 0.15, rng)]
    objectives = [1.0, 3.0, 2.0, 4.0]  # the outlier has the lowest objective
    best, mean = restarts.consensus(clusterings, objectives)
    expected = [np.mean([adjusted_rand_score(c, o) for o in clusterings if o is not c]) for c in clusterings]
    assert np.allclose(mean, expected)
    assert best == int(np.argmax(expected)) == 1


def test_consensus_ties_and_pairs_fall_back_to_the_objective():
    c = np.array([0, 0, 1, 1, 2, 2])
    assert restarts.consensus([c, c, c], [3.0, 1.0, 2.0])[0] == 1
    assert restarts.consensus([c, c[::-1]], [2.0, 1.0])[0] == 1


@pytest.fixture(scope="module")
def fits(sim):
    a = ad.read_h5ad(sim)
    b = a.obs["batch"].astype(str).to_numpy()
    xs = [model.liger_scale(a.X[b == name]) for name in ("b1", "b2")]
    kw = dict(k=5, lam=DEFAULTS.lambda_, max_iters=30, thresh=DEFAULTS.thresh, seed=4, solver=DEFAULTS.solver,
              hals_sweeps=DEFAULTS.hals_sweeps)
    return xs, kw, model.fit_restarts(xs, nrep=3, **kw)


def test_restart_r_is_the_single_fit_with_seed_plus_r(fits):
    xs, kw, out = fits
    one = model.fit_restarts(xs, nrep=1, **{**kw, "seed": kw["seed"] + 2})[0]
    assert out[2].seed == kw["seed"] + 2 and out[2].objective == one.objective
    assert np.array_equal(out[2].W, one.W)
    best = model.fit_inmf(xs, nrep=3, **kw)
    assert best.objective == min(f.objective for f in out) and best.rep_objectives == [f.objective for f in out]


def test_choose_keeps_the_consensus_restart_with_its_own_clustering(fits):
    _, kw, out = fits
    opts = dataclasses.replace(DEFAULTS, k=5, seed=kw["seed"], n_neighbors=10, leiden_starts=2)
    by_objective = restarts.choose(out, dataclasses.replace(opts, keep_restart="objective"))
    assert by_objective.fit is min(out, key=lambda f: f.objective) and by_objective.clustered is None
    kept = restarts.choose(out, dataclasses.replace(opts, keep_restart="consensus"))
    labels = [restarts.cluster_fit(f.H, dataclasses.replace(opts, seed=f.seed)) for f in out]
    best, mean = restarts.consensus(labels, [f.objective for f in out])
    assert kept.fit is out[best] and np.allclose(kept.agreement, mean)
    assert np.array_equal(kept.clustered[3], labels[best])
