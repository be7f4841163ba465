"""Generic clustering and integration metrics (numpy / scikit-learn; no model-specific code).

* `alignment_score`: LIGER's alignment (Butler et al. 2018; Welch et al. 2019): how mixed the batches
  are among each cell's nearest neighbours, 0 = fully separated, 1 = perfectly mixed.
* `agreement`: LIGER's agreement: mean fraction of each cell's kNN shared between a per-batch
  embedding (the batch factorised alone) and the joint embedding (structure preserved).
* `ari_nmi`: adjusted Rand index / normalised mutual information against reference labels,
  on labelled cells only (NaN / None labels are ignored), with the number of cells scored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.neighbors import NearestNeighbors


def knn(x: np.ndarray, k: int, include_self: bool = False) -> np.ndarray:
    """Indices of each row's ``k`` nearest neighbours (Euclidean, exact), self excluded by default."""
    x = np.asarray(x, dtype=np.float64)
    extra = 0 if include_self else 1
    kk = min(k + extra, x.shape[0])
    nn = NearestNeighbors(n_neighbors=kk).fit(x).kneighbors(x, return_distance=False)
    if include_self:
        return nn
    # drop each row's own index (usually the first column; robust to exact duplicates)
    out = np.empty((x.shape[0], kk - 1), dtype=nn.dtype)
    for start in range(0, x.shape[0], 65536):
        block = nn[start:start + 65536]
        own = block == np.arange(start, start + len(block))[:, None]
        own[~own.any(1), -1] = True  # self not among neighbours: drop the farthest instead
        out[start:start + len(block)] = block[~own].reshape(len(block), kk - 1)
    return out


def alignment_score(emb: np.ndarray, batch, k: int | None = None, seed: int = 1,
                    per_cell: bool = False):
    """LIGER alignment score of an embedding (cells x dims) with batch labels ``batch``.

    Every batch is downsampled (seeded) to the size of the smallest one; with N batches and
    ``k`` neighbours (default ``min(max(floor(0.01 n), 10), n - 1)`` over the ``n`` sampled cells),
    a cell with ``s`` same-batch neighbours scores ``1 - (s - k/N) / (k - k/N)``; the mean is returned
    (and the per-cell scores with the sampled indices when ``per_cell``).
    """
    batch = np.asarray(pd.Series(batch).astype(str))
    names, counts = np.unique(batch, return_counts=True)
    if len(names) < 2:
        raise ValueError("alignment needs at least two batches")
    rng = np.random.default_rng(seed)
    m = counts.min()
    idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(batch == b), m, replace=False) for b in names]))
    n = len(idx)
    if k is None:
        k = int(min(max(np.floor(0.01 * n), 10), n - 1))
    k = int(min(k, n - 1))
    nb = knn(np.asarray(emb)[idx], k)
    b = batch[idx]
    same = (b[nb] == b[:, None]).sum(1)
    nbat = len(names)
    scores = 1 - (same - k / nbat) / (k - k / nbat)
    return (float(scores.mean()), scores, idx) if per_cell else float(scores.mean())


def agreement(per_batch_embs: list[np.ndarray], joint_embs: list[np.ndarray], k: int = 15) -> float:
    """LIGER agreement: mean over batches and cells of |kNN_alone ∩ kNN_joint| / k.

    ``per_batch_embs[i]`` embeds batch i on its own (e.g. NMF of that batch alone); ``joint_embs[i]``
    are the same cells in the integrated space. Neighbours are searched within the batch.
    """
    vals = []
    for a, j in zip(per_batch_embs, joint_embs):
        kk = min(k, a.shape[0] - 1)
        na, nj = knn(a, kk), knn(j, kk)
        shared = [len(np.intersect1d(r1, r2, assume_unique=True)) for r1, r2 in zip(na, nj)]
        vals.append(np.asarray(shared) / kk)
    return float(np.concatenate(vals).mean())


def labelled_mask(labels) -> np.ndarray:
    """Cells with a usable reference label (not NaN / None / empty / 'unlabelled')."""
    s = pd.Series(labels, dtype="object")
    return (s.notna() & ~s.astype(str).isin(["", "nan", "None", "unlabelled", "unlabeled"])).to_numpy()


def ari_nmi(labels, clusters) -> tuple[float, float, int]:
    """(ARI, NMI, number of labelled cells) of ``clusters`` against ``labels`` on labelled cells."""
    keep = labelled_mask(labels)
    n = int(keep.sum())
    if n == 0:
        return float("nan"), float("nan"), 0
    y = pd.Series(labels, dtype="object")[keep].astype(str).to_numpy()
    c = pd.Series(clusters, dtype="object")[keep].astype(str).to_numpy()
    return float(adjusted_rand_score(y, c)), float(normalized_mutual_info_score(y, c)), n
