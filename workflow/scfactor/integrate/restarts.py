"""Which iNMF restart the integrate step keeps (schema ``keep_restart``).

Restart r is initialised with seed + r and its loadings are clustered with seed + r too (so a restart's
result does not depend on which rule kept it).

* ``objective``: the lowest final objective (LIGER's ``nrep`` rule).
* ``consensus``: every restart is quantile-normalised and clustered (joint Leiden, the step's own
  settings); the restart whose clustering agrees most with the other restarts' clusterings (mean
  adjusted Rand index, the medoid) is kept; ties go to the lower objective. Label-free: it keeps the
  partition the restarts agree on instead of the one with the lowest objective, which does not rank
  fits by how well they separate populations (docs/integrate.md, "Parity with LIGER and the defaults").
  With fewer than 3 restarts there is no medoid and the objective decides. On large data (more cells
  than ``exact_max_cells``) the restarts are compared on one seeded subsample of ``consensus_cells`` cells
  (the same cells for every restart, split between batches in proportion to their sizes): each restart's subsample
  loadings are quantile-normalised and clustered exactly as small data are; only the kept restart is then
  normalised and clustered on all cells.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from sklearn.metrics import adjusted_rand_score

from ..core.log import Progress
from .quantile_norm import quantile_normalize
from .snn import leiden_snn


def normalise_and_cluster(h: Sequence[np.ndarray], opts, ref: int | None = None):
    """Quantile normalisation of the loadings ``h`` and joint Leiden clusters, as the integrate step does.

    Returns ``(h_norm, refined max-factor clusters, reference batch index, Leiden labels)``.
    """
    h_norm, qclusters, ref = quantile_normalize(h, ref, quantiles=opts.quantiles, min_cells=opts.min_cells,
                                                knn_k=opts.knn_k, exact_max_cells=opts.exact_max_cells,
                                                seed=opts.seed)
    x = np.vstack(h_norm).astype(np.float32).astype(np.float64)  # the precision stored in obsm
    labels = leiden_snn(x, k=opts.n_neighbors, prune=opts.snn_prune, resolution=opts.leiden_resolution,
                        n_starts=opts.leiden_starts, seed=opts.seed, exact_max_cells=opts.exact_max_cells,
                        large_starts=opts.large_leiden_starts)
    return h_norm, qclusters, ref, labels


def consensus_subsample(sizes: Sequence[int], max_cells: int, seed: int) -> list[np.ndarray] | None:
    """Per batch, the sorted cell indices of the restarts' common subsample: ``max_cells`` cells drawn (seeded)
    from all cells, so batches keep their proportions; None when there are no more cells than ``max_cells``."""
    n = int(sum(sizes))
    if n <= max_cells:
        return None
    keep = np.sort(np.random.default_rng(seed).choice(n, max_cells, replace=False))
    starts = np.cumsum([0, *sizes])
    return [keep[(keep >= a) & (keep < z)] - a for a, z in zip(starts[:-1], starts[1:])]


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
    """The restart kept: its fit, its `normalise_and_cluster` output (clustered with the restart's own seed),
    every restart's mean ARI to the others (empty unless ``consensus`` compared them) and the number of cells
    they were compared on (0 when not compared)."""
    fit: object
    clustered: tuple | None
    agreement: list
    compared_cells: int = 0


def _own_seed(opts, fit):
    return dataclasses.replace(opts, seed=fit.seed)


def _logged(progress: Progress, done: int, result, fit):
    """``result`` after logging that ``done`` restarts (the last one ``fit``) are clustered."""
    progress.log(done, rep=fit.rep)
    return result


def choose(fits: Sequence, opts, ref: int | None = None) -> Kept:
    """The restart of ``fits`` (`model.fit_restarts`) kept under ``opts.keep_restart`` (on large data, more
    cells than ``opts.exact_max_cells``, the consensus compares the restarts on `consensus_subsample` of
    ``opts.consensus_cells`` cells)."""
    objectives = [f.objective for f in fits]
    if opts.keep_restart == "objective" or len(fits) < 3:
        best = fits[int(np.argmin(objectives))]
        return Kept(best, normalise_and_cluster(best.H, _own_seed(opts, best), ref), [])
    sizes = [h.shape[0] for h in fits[0].H]
    sub = None if sum(sizes) <= opts.exact_max_cells else consensus_subsample(sizes, opts.consensus_cells, opts.seed)
    progress = Progress("consensus: restart clustered", len(fits), unit="restarts")
    if sub is None:
        clustered = [_logged(progress, r, normalise_and_cluster(f.H, _own_seed(opts, f), ref), f)
                     for r, f in enumerate(fits, 1)]
        best, agreement = consensus([c[3] for c in clustered], objectives)
        return Kept(fits[best], clustered[best], list(agreement), sum(h.shape[0] for h in fits[0].H))
    labels = [_logged(progress, r, cluster_fit([np.asarray(h)[i] for h, i in zip(f.H, sub)], _own_seed(opts, f),
                                               ref), f) for r, f in enumerate(fits, 1)]
    best, agreement = consensus(labels, objectives)
    kept = fits[best]
    return Kept(kept, normalise_and_cluster(kept.H, _own_seed(opts, kept), ref), list(agreement),
                int(sum(len(i) for i in sub)))
