"""LIGER's SNN graph + multi-start Leiden (scfactor.integrate.snn)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from scfactor.integrate import snn
from scfactor.integrate.quantile_norm import knn_indices

from .conftest import DEFAULTS


def _blobs(sizes, dims=6, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 5, (len(sizes), dims))
    x = np.vstack([c + spread * rng.standard_normal((n, dims)) for c, n in zip(centres, sizes)])
    return np.abs(x), np.repeat(np.arange(len(sizes)), sizes)


def test_snn_weights_are_jaccard_of_neighbour_sets():
    x, _ = _blobs([15, 15], seed=1)
    k = 5
    g = snn.snn_graph(x, k, prune=0.0).toarray()
    nn = knn_indices(x, k)
    for i, j in [(0, 1), (0, 20), (3, 3), (7, 12)]:
        s = len(set(nn[i]) & set(nn[j]))
        assert np.isclose(g[i, j], s / (2 * k - s))
    assert np.allclose(g, g.T)
    pruned = snn.snn_graph(x, k, prune=0.2).toarray()
    assert ((pruned == 0) | (pruned >= 0.2)).all() and np.allclose(pruned[pruned > 0], g[pruned > 0])



def test_snn_graph_built_in_row_blocks_equals_one_block():
    x, _ = _blobs([40, 37], seed=2)
    whole = snn.snn_graph(x, 6, prune=1 / 15)
    for block in (1, 10, 76):
        part = snn.snn_graph(x, 6, prune=1 / 15, block=block)
        assert part.format == "csr" and part.dtype == np.float64 and part.shape == whole.shape
        assert (part != whole).nnz == 0 and part.nnz == whole.nnz


def test_leiden_snn_finds_planted_groups_and_is_seeded():
    x, truth = _blobs([120, 80, 60, 30])
    kw = dict(k=DEFAULTS.n_neighbors, prune=DEFAULTS.snn_prune, resolution=DEFAULTS.leiden_resolution,
              n_starts=3)
    a = snn.leiden_snn(x, seed=1, **kw)
    assert adjusted_rand_score(truth, a) == 1.0
    assert (snn.leiden_snn(x, seed=1, **kw) == a).all()
    assert (np.bincount(a) == np.sort(np.bincount(truth))[::-1]).all()  # 0 = largest cluster


def test_large_path_runs_the_first_large_starts_seeds(monkeypatch):
    """Above exact_max_cells Leiden runs from the first ``large_leiden_starts`` of the ``leiden_starts`` seeds
    (igraph), at or below it from all of them (leidenalg); both find the planted groups."""
    x, truth = _blobs([120, 80, 60, 30])
    kw = dict(k=DEFAULTS.n_neighbors, prune=DEFAULTS.snn_prune, resolution=DEFAULTS.leiden_resolution,
              n_starts=5, seed=1, large_starts=2)
    seen = {}
    for name in ("_igraph_starts", "_leidenalg_starts"):
        real = getattr(snn, name)
        monkeypatch.setattr(snn, name, lambda g, r, seeds, _real=real, _name=name:
                            seen.setdefault(_name, list(seeds)) and _real(g, r, seeds))
    small = snn.leiden_snn(x, exact_max_cells=len(x), **kw)
    large = snn.leiden_snn(x, exact_max_cells=len(x) - 1, **kw)
    assert len(seen["_leidenalg_starts"]) == 5 and seen["_igraph_starts"] == seen["_leidenalg_starts"][:2]
    assert adjusted_rand_score(truth, small) == 1.0 and adjusted_rand_score(truth, large) == 1.0


def test_group_singletons_joins_the_most_connected_cluster():
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    w = sp.lil_matrix((7, 7))
    w[6, 0], w[6, 3], w[6, 4] = 0.9, 0.5, 0.5  # mean weight: cluster 0 0.3, cluster 1 ~0.33
    out = snn.group_singletons(labels, sp.csr_matrix(w))
    assert out[6] == 1 and (out[:6] == labels[:6]).all()
