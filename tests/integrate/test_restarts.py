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
    labels = [restarts.cluster_fit(f.H, dataclasses.replace(opts, seed=f.seed)) for f in out]
    lowest = int(np.argmin([f.objective for f in out]))
    by_objective = restarts.choose(out, dataclasses.replace(opts, keep_restart="objective"))
    assert by_objective.fit is out[lowest] and np.array_equal(by_objective.clustered[3], labels[lowest])
    kept = restarts.choose(out, dataclasses.replace(opts, keep_restart="consensus"))
    best, mean = restarts.consensus(labels, [f.objective for f in out])
    assert kept.fit is out[best] and np.allclose(kept.agreement, mean)
    assert np.array_equal(kept.clustered[3], labels[best])


@pytest.mark.parametrize("keep", ["consensus", "objective"])
def test_integrate_step_records_the_kept_restart(tmp_path, sim, keep):
    from conftest import run_cli
    from scfactor.integrate.cli import integrate
    out, met = tmp_path / "o.h5ad", tmp_path / "m.tsv"
    proc = run_cli(integrate, "--input", sim, "--layer", "X", "--genes", "all", "--k", "4", "--max-iters", "10",
                   "--agreement-dims", "4", "--min-cells", "5", "--knn-k", "5", "--n-neighbors", "8",
                   "--leiden-starts", "2", "--nrep", "3", "--keep-restart", keep, "--device", "cpu",
                   "--output", out, "--metrics", met)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = ad.read_h5ad(out).uns["inmf"]
    if keep == "consensus":
        agreement = np.asarray(info["rep_agreement"])
        assert len(agreement) == 3 and agreement[info["best_rep"]] == agreement.max()
        assert info["rep_agreement_cells"] == 500  # every cell: below exact_max_cells
    else:
        assert info["best_rep"] == int(np.argmin(info["rep_objectives"])) and len(info["rep_agreement"]) == 0
        assert info["rep_agreement_cells"] == 0


def test_consensus_subsample_is_seeded_proportional_and_only_above_the_threshold():
    assert restarts.consensus_subsample([300, 200], 500, seed=1) is None
    sub = restarts.consensus_subsample([300, 200], 100, seed=1)
    again = restarts.consensus_subsample([300, 200], 100, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(sub, again))
    assert sum(len(i) for i in sub) == 100 and 45 <= len(sub[0]) <= 75  # about 300/500 of the cells
    for i, n in zip(sub, (300, 200)):
        assert (np.diff(i) > 0).all() and i.min() >= 0 and i.max() < n


def test_consensus_cells_matter_only_above_exact_max_cells(sim, fits, monkeypatch):
    """At most ``exact_max_cells`` cells every restart is compared on all cells whatever ``consensus_cells``
    (the same kept restart, agreements and clusters); above it, on `consensus_subsample` of ``consensus_cells``
    cells (all cells when there are fewer)."""
    _, kw, out = fits
    opts = dataclasses.replace(DEFAULTS, k=5, seed=kw["seed"], n_neighbors=10, leiden_starts=2)
    sizes = [h.shape[0] for h in out[0].H]
    n = sum(sizes)
    base = restarts.choose(out, dataclasses.replace(opts, exact_max_cells=n))
    other = restarts.choose(out, dataclasses.replace(opts, exact_max_cells=n, consensus_cells=100))
    assert other.fit is base.fit and other.agreement == base.agreement and other.compared_cells == n
    for a, b in zip(other.clustered, base.clustered):
        assert all(np.array_equal(x, y) for x, y in zip(a, b)) if isinstance(a, list) else np.array_equal(a, b)

    clustered, real = [], restarts.normalise_and_cluster
    # a subsample is clustered on the exact path; all cells (approximate kNN, another test's) get dummy labels
    monkeypatch.setattr(restarts, "normalise_and_cluster", lambda h, o, ref=None: clustered.append(sum(map(len, h)))
                        or (real(h, o, ref) if clustered[-1] < n else (None, None, None, np.arange(n) % 3)))
    large = restarts.choose(out, dataclasses.replace(opts, exact_max_cells=n - 1, consensus_cells=120))
    assert clustered == [120] * len(out) + [n] and large.compared_cells == 120
    sub = restarts.consensus_subsample(sizes, 120, opts.seed)
    labels = [real([h[i] for h, i in zip(f.H, sub)], dataclasses.replace(opts, seed=f.seed))[3] for f in out]
    best, mean = restarts.consensus(labels, [f.objective for f in out])
    assert large.fit is out[best] and np.allclose(large.agreement, mean)
    clustered.clear()
    fewer = restarts.choose(out, dataclasses.replace(opts, exact_max_cells=n - 1, consensus_cells=n))
    assert fewer.compared_cells == n and clustered == [n] * len(out)  # every cell, each restart clustered once


@pytest.mark.slow  # pynndescent compiles its search (numba) in each process
def test_consensus_on_a_subsample_above_exact_max_cells(sim, fits, monkeypatch):
    """Above ``exact_max_cells`` the restarts are compared on the common subsample (each clustered exactly as
    small data) and the kept one is clustered on all cells by the large-data path (approximate kNN, igraph's
    Leiden); at the threshold nothing changes."""
    from scfactor.core import clustering
    _, kw, out = fits
    obs = ad.read_h5ad(sim).obs
    sim_labels = np.concatenate([obs["label"].astype(str)[obs["batch"] == b].to_numpy() for b in ("b1", "b2")])
    opts = dataclasses.replace(DEFAULTS, k=5, seed=kw["seed"], n_neighbors=10, leiden_starts=2)
    n = sum(h.shape[0] for h in out[0].H)
    exact = restarts.choose(out, dataclasses.replace(opts, exact_max_cells=n))
    assert exact.compared_cells == n
    same = restarts.choose(out, dataclasses.replace(opts, exact_max_cells=10 * n))
    assert same.fit is exact.fit and np.array_equal(same.clustered[3], exact.clustered[3])
    assert all(np.array_equal(a, b) for a, b in zip(same.clustered[0], exact.clustered[0]))

    calls = []
    approx = clustering.approximate_knn
    monkeypatch.setattr(clustering, "approximate_knn", lambda x, k, seed: calls.append(len(x)) or approx(x, k, seed))
    small = dataclasses.replace(opts, exact_max_cells=250, consensus_cells=250)
    large = restarts.choose(out, small)
    assert large.compared_cells == 250 and len(large.agreement) == len(out)
    sub = restarts.consensus_subsample([h.shape[0] for h in out[0].H], 250, opts.seed)
    labels = [restarts.cluster_fit([h[i] for h, i in zip(f.H, sub)], dataclasses.replace(small, seed=f.seed))
              for f in out]
    best, mean = restarts.consensus(labels, [f.objective for f in out])
    assert large.fit is out[best] and np.allclose(large.agreement, mean)
    # the kept restart on all cells: kNN searches over more than 250 points are approximate (the SNN graph of
    # all 500 cells, the refinement of the 300-cell batch), the 200-cell batch's is exact
    assert sorted(calls) == [300, n] and len(large.clustered[3]) == n
    again = restarts.choose(out, small)
    assert np.array_equal(again.clustered[3], large.clustered[3])  # seeded
    # as good as the exact path against the planted groups
    exact_ari = adjusted_rand_score(sim_labels, exact.clustered[3])
    assert adjusted_rand_score(sim_labels, large.clustered[3]) >= exact_ari - 0.05
