"""Starting responsibilities of the NB mixture's EM (one start per restart).

Kinds (``STARTS``; the ``init`` and ``restarts`` options of ``nbmix.schema.yaml``):

* ``random``: uniform draws per (cell, component), normalised per cell (the reference's start);
* ``kmeans``: k-means (10 Lloyd runs, the best kept) on the log1p PCA scores: the same partition for
  nearly every seed, so it is a good first start but a poor restart;
* ``kmeans++``: k-means++ seeding on the PCA scores (k cells drawn with probability proportional to the
  squared distance to the nearest cell already drawn) and each cell assigned to its nearest seed, with no
  Lloyd iterations: a different partition for every seed, which the EM then refines;
* ``subsample``: EM on a random subsample of the cells from random responsibilities, then one E step on all
  cells (done by `scfactor.nbmix.model.fit_em`, which owns the EM; `subsample_rows` draws the cells);
* ``leiden``: Leiden labels on a k-NN graph of the PCA scores, merged / split to k groups;
* ``nmf``: Poisson (KL) NMF topic weights, as the notebook.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ..core.errors import ScfactorError

STARTS = ("random", "kmeans", "kmeans++", "subsample", "leiden", "nmf")
#: neighbours of the k-NN graph of the ``leiden`` start (its resolution is the ``leiden.resolution`` option
#: of the Leiden baseline)
LEIDEN_INIT_NEIGHBORS = 15
#: a subsample start draws at least this many cells per component (or all cells when there are fewer)
SUBSAMPLE_MIN_PER_COMPONENT = 20
#: cells scaled at a time by `log1p_pca` (bounds its temporary per-nonzero factors)
ROW_CHUNK = 8192


def log1p_pca(x, n_pcs: int, seed: int, target_sum: float = 1e4):
    """PCA scores of log1p(counts / s * target_sum) (sparse-friendly truncated SVD of the centred data)."""
    from sklearn.decomposition import PCA
    x = sp.csr_matrix(x)
    # the one float64 copy of the values (the indices are shared), scaled and logged in place
    y = sp.csr_matrix((x.data.astype(np.float64), x.indices, x.indptr), shape=x.shape)
    s = np.asarray(y.sum(axis=1)).ravel()
    scale = target_sum / s
    for a in range(0, y.shape[0], ROW_CHUNK):
        b = min(y.shape[0], a + ROW_CHUNK)
        lo, hi = y.indptr[a], y.indptr[b]
        y.data[lo:hi] *= np.repeat(scale[a:b], np.diff(y.indptr[a:b + 1]))
    np.log1p(y.data, out=y.data)
    n_comp = max(1, min(n_pcs, x.shape[0] - 1, x.shape[1] - 1))
    return PCA(n_components=n_comp, random_state=seed, svd_solver="arpack" if n_comp < min(x.shape) - 1
               else "full").fit_transform(y.toarray() if n_comp >= min(x.shape) - 1 else y)


def labels_to_k(labels, scores, k: int, seed: int) -> np.ndarray:
    """Turn cluster labels into exactly ``k`` groups: merge surplus clusters by weighted k-means on
    their centroids in ``scores``, or split the largest clusters with k-means when there are too few."""
    from sklearn.cluster import KMeans
    labels = np.unique(np.asarray(labels).astype(str), return_inverse=True)[1]
    m = labels.max() + 1
    if m > k:
        cent = np.stack([scores[labels == c].mean(0) for c in range(m)])
        size = np.bincount(labels, minlength=m)
        grp = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(cent, sample_weight=size).labels_
        return grp[labels]
    labels = labels.copy()
    while labels.max() + 1 < k:
        big = np.bincount(labels).argmax()
        idx = np.flatnonzero(labels == big)
        if len(idx) < 2:
            break
        sub = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(scores[idx]).labels_
        labels[idx[sub == 1]] = labels.max() + 1
    return labels


def random_responsibilities(n: int, k: int, seed: int) -> np.ndarray:
    """``[n, k]`` uniform draws normalised per cell (the reference's random start)."""
    z = np.random.default_rng(seed).uniform(size=(n, k))
    return z / z.sum(1, keepdims=True)


def kmeanspp_labels(scores: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Each cell's nearest of ``k`` k-means++ seeds drawn from ``scores`` (no Lloyd iterations)."""
    from sklearn.cluster import kmeans_plusplus
    centres, _ = kmeans_plusplus(np.ascontiguousarray(scores), k, random_state=seed)
    d2 = (scores ** 2).sum(1, keepdims=True) - 2 * scores @ centres.T + (centres ** 2).sum(1)[None, :]
    return d2.argmin(1)


def subsample_rows(n: int, k: int, fraction: float, seed: int | tuple[int, ...]) -> np.ndarray:
    """Sorted rows of a subsample start: ``ceil(fraction n)`` cells, at least
    ``SUBSAMPLE_MIN_PER_COMPONENT * k``, at most all ``n`` (``seed``: an int or a tuple of ints, numpy's seed)."""
    m = min(n, max(math.ceil(fraction * n), SUBSAMPLE_MIN_PER_COMPONENT * k))
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    """``[n, k]`` one-hot responsibilities of integer labels."""
    z = np.zeros((len(labels), k))
    z[np.arange(len(labels)), labels] = 1.0
    return z


class Starts:
    """Starting responsibilities of the cells ``x`` for ``k`` components (every kind but ``subsample``).

    The log1p PCA scores (``n_pcs`` components, computed with ``pca_seed``) are computed once, on first use,
    and shared by all starts that need them.
    """

    def __init__(self, x, k: int, n_pcs: int, leiden_resolution: float, pca_seed: int):
        self.x, self.k, self.n_pcs, self.leiden_resolution, self.pca_seed = x, k, n_pcs, leiden_resolution, pca_seed
        self._scores = None

    @property
    def scores(self) -> np.ndarray:
        """log1p PCA scores of the cells (`log1p_pca`)."""
        if self._scores is None:
            self._scores = log1p_pca(self.x, self.n_pcs, self.pca_seed)
        return self._scores

    def responsibilities(self, kind: str, seed: int) -> np.ndarray:
        """``[n, k]`` starting responsibilities of kind ``kind`` drawn with ``seed``."""
        n, k = self.x.shape[0], self.k
        if kind == "random":
            return random_responsibilities(n, k, seed)
        if kind == "nmf":
            from sklearn.decomposition import NMF
            model = NMF(n_components=k, beta_loss="kullback-leibler", solver="mu", init="nndsvda" if seed == 0
                        else "random", random_state=seed, max_iter=300, tol=1e-4)
            load = model.fit_transform(sp.csr_matrix(self.x, dtype=np.float64))
            weights = load * model.components_.sum(axis=1)[None, :] + 1e-12
            return weights / weights.sum(1, keepdims=True)
        if kind == "kmeans":
            from sklearn.cluster import KMeans
            return one_hot(KMeans(n_clusters=k, n_init=10, random_state=seed).fit(self.scores).labels_, k)
        if kind == "kmeans++":
            return one_hot(kmeanspp_labels(self.scores, k, seed), k)
        if kind == "leiden":
            from ..core.clustering import leiden_on_scores
            lab = leiden_on_scores(self.scores, LEIDEN_INIT_NEIGHBORS, self.leiden_resolution, seed)
            return one_hot(labels_to_k(lab, self.scores, k, seed), k)
        raise ScfactorError(f"unknown start {kind!r}; choose one of {', '.join(s for s in STARTS if s != 'subsample')}")
