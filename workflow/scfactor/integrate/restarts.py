"""Which iNMF restart the integrate step keeps (schema ``keep_restart``).

Restart r is initialised with seed + r and its loadings are clustered with seed + r too (so a restart's
result does not depend on which rule kept it).

* ``objective``: the lowest final objective (LIGER's ``nrep`` rule).
* ``consensus``: every restart is quantile-normalised and clustered (joint Leiden, the step's own
  settings); the restart whose clustering agrees most with the other restarts' clusterings (mean
  adjusted Rand index, the medoid) is kept; ties go to the lower objective. Label-free: it keeps the
  partition the restarts agree on instead of the one with the lowest objective, which does not rank
  fits by how well they separate populations (docs/integrate.md, "Parity with LIGER and the defaults").
  With fewer than 3 restarts there is no medoid and the objective decides.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from sklearn.metrics import adjusted_rand_score

from .quantile_norm import quantile_normalize
from .snn import leiden_snn


def normalise_and_cluster(h: Sequence[np.ndarray], opts, ref: int | None = None):
    """Quantile normalisation of the loadings ``h`` and joint Leiden clusters, as the integrate step does.

    Returns ``(h_norm, refined max-factor clusters, reference batch index, Leiden labels)``.
    """
    h_norm, qclusters, ref = quantile_normalize(h, ref, quantiles=opts.quantiles, min_cells=opts.min_cells,
                                                knn_k=opts.knn_k)
    x = np.vstack(h_norm).astype(np.float32).astype(np.float64)  # the precision stored in obsm
    labels = leiden_snn(x, k=opts.n_neighbors, prune=opts.snn_prune, resolution=opts.leiden_resolution,
                        n_starts=opts.leiden_starts, seed=opts.seed)
    return h_norm, qclusters, ref, labels


def cluster_fit(h: Sequence[np.ndarray], opts, ref: int | None = None) -> np.ndarray:
    """Joint Leiden labels of one fit's loadings ``h`` (`normalise_and_cluster`)."""
    return normalise_and_cluster(h, opts, ref)[3]


def agreement_matrix(clusterings: Sequence[np.ndarray]) -> np.ndarray:
    """Pairwise ARI between clusterings of the same cells (1 on the diagonal)."""
    n = len(clusterings)
    a = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            a[i, j] = a[j, i] = adjusted_rand_score(clusterings[i], clusterings[j])
    return a


def consensus(clusterings: Sequence[np.ndarray], objectives: Sequence[float]) -> tuple[int, np.ndarray]:
    """(index of the medoid clustering, every clustering's mean ARI to the others). The medoid has the
    highest mean ARI; ties go to the lower objective; with fewer than 3 clusterings, the lowest objective."""
    n = len(clusterings)
    if n < 3:  # with two, both agree equally
        return int(np.argmin(objectives)), np.ones(n)
    mean = (agreement_matrix(clusterings).sum(1) - 1) / (n - 1)
    order = np.lexsort((np.asarray(objectives, dtype=float), -np.round(mean, 12)))
    return int(order[0]), mean


@dataclasses.dataclass
class Kept:
    """The restart kept: its fit, its `normalise_and_cluster` output (clustered with the restart's own seed)
    and every restart's mean ARI to the others (empty unless ``consensus`` compared them)."""
    fit: object
    clustered: tuple | None
    agreement: list


def choose(fits: Sequence, opts, ref: int | None = None) -> Kept:
    """The restart of ``fits`` (`model.fit_restarts`) kept under ``opts.keep_restart``."""
    objectives = [f.objective for f in fits]
    if opts.keep_restart == "objective" or len(fits) < 3:
        best = fits[int(np.argmin(objectives))]
        return Kept(best, normalise_and_cluster(best.H, dataclasses.replace(opts, seed=best.seed), ref), [])
    clustered = [normalise_and_cluster(f.H, dataclasses.replace(opts, seed=f.seed), ref) for f in fits]
    best, agreement = consensus([c[3] for c in clustered], objectives)
    return Kept(fits[best], clustered[best], list(agreement))
