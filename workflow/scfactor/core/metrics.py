"""Generic clustering and integration metrics (numpy / scikit-learn; no model-specific code).

* Clustering against reference labels: accuracy with the seed's majority mapping and with an optimal
  one-to-one (Hungarian) matching, NMI, ARI, log loss of responsibilities, label correlation.
  Functions take 1-d label arrays (any hashable values) and, for soft metrics, an ``[n, k]`` matrix of
  responsibilities whose columns are the predicted clusters ``0..k-1``. Unlabelled cells (NaN / None /
  'unlabelled') are removed with `labelled_mask` by the caller, or ignored by `ari_nmi`.
* `alignment_score`: LIGER's alignment (Butler et al. 2018; Welch et al. 2019): how mixed the batches
  are among each cell's nearest neighbours, 0 = fully separated, 1 = perfectly mixed.
* `agreement`: LIGER's agreement: mean fraction of each cell's kNN shared between a per-batch
  embedding (the batch factorised alone) and the joint embedding (structure preserved).
* `ari_nmi`: ARI / NMI on labelled cells only, with the number of cells scored.
* `label_vector`: the labels every scoring step uses: an obs column (``label_key``) as text, the cells to score
  (labelled and, when ``labels_keep`` names some, one of those labels) and a one-line warning when no cell (or
  fewer than asked) can be scored. Labels are compared as text: an integer-coded column (``3``, or ``3.0`` in a
  column made float by missing values) matches the label ``"3"`` or ``3`` in a config.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
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
                    per_cell: bool = False, max_cells: int | None = None):
    """LIGER alignment score of an embedding (cells x dims) with batch labels ``batch``.

    Every batch is downsampled (seeded) to the size of the smallest one (and, with ``max_cells``, to at
    most ``max_cells // N`` cells, so that memory, which grows as n * k = 0.01 n^2, stays bounded: the
    score is a subsample estimate either way); with N batches and
    ``k`` neighbours (default ``min(max(floor(0.01 n), 10), n - 1)`` over the ``n`` sampled cells),
    a cell with ``s`` same-batch neighbours (itself excluded) scores ``1 - (s - k/N) / (k - k/N)``; the mean
    is returned (and the per-cell scores with the sampled indices when ``per_cell``).

    Range: ``[0, N / (N - 1)]`` (``[0, 2]`` for two batches), not ``[0, 1]``. 0: every neighbour is from the
    cell's own batch (batches separated); 1: as many same-batch neighbours as random mixing gives
    (``k/N``); above 1: FEWER same-batch neighbours than random mixing, i.e. cells sit preferentially next
    to the other batch (over-correction, or batches interleaved in a regular pattern); the maximum is
    reached when no neighbour is from the cell's own batch. A mean slightly above 1 is sampling noise
    around 1; clearly above 1 is a warning sign, not a better score.
    """
    batch = np.asarray(pd.Series(batch).astype(str))
    names, counts = np.unique(batch, return_counts=True)
    if len(names) < 2:
        raise ValueError("alignment needs at least two batches")
    rng = np.random.default_rng(seed)
    m = int(counts.min()) if max_cells is None else int(min(counts.min(), max(max_cells // len(names), 2)))
    idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(batch == b), m, replace=False) for b in names]))
    n = len(idx)
    if k is None:
        k = int(min(max(np.floor(0.01 * n), 10), n - 1))
    k = int(min(k, n - 1))
    nb = knn(np.asarray(emb)[idx], k)
    b = np.searchsorted(names, batch[idx]).astype(np.int16)  # codes: n x k compares without strings
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
        both = np.sort(np.hstack([knn(a, kk), knn(j, kk)]), axis=1)
        shared = (both[:, 1:] == both[:, :-1]).sum(1)  # a neighbour is in both sets iff it appears twice
        vals.append(shared / kk)
    return float(np.concatenate(vals).mean())


#: values that mean "no label" (besides missing values)
UNLABELLED = ("", "nan", "NaN", "None", "unlabelled", "unlabeled", "filtered_out")


def labelled_mask(labels) -> np.ndarray:
    """Cells with a usable reference label (not NaN / None / empty / 'unlabelled')."""
    s = pd.Series(labels, dtype="object")
    return (s.notna() & ~s.astype(str).isin(UNLABELLED)).to_numpy()


def _label_text(value):
    """One label as text (None when missing or an unlabelled marker); integral numbers without '.0'."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        text = str(bool(value))
    elif isinstance(value, (int, np.integer)):
        text = str(int(value))
    elif isinstance(value, (float, np.floating)):
        text = str(int(value)) if float(value).is_integer() else str(float(value))
    else:
        text = str(value)
    return None if text in UNLABELLED else text


def label_strings(values) -> np.ndarray:
    """Labels as an object array of text, None where a cell has no label (missing or an `UNLABELLED` marker).

    Integer codes stay integers (``3``, also when missing values made the column float: ``3.0`` -> ``'3'``), so
    that a label named in a config as ``3`` or ``"3"`` selects the cells coded 3.
    """
    codes, uniques = pd.factorize(pd.Series(values, dtype=None if isinstance(values, pd.Series) else object))
    text = np.array([_label_text(v) for v in uniques] + [None], dtype=object)
    return text[codes]  # code -1 (missing) takes the trailing None


def label_vector(obs: pd.DataFrame, key: str, keep=()) -> tuple[np.ndarray, np.ndarray, str | None]:
    """``(labels, mask, warning)``: the labels of scoring steps, read from column ``key`` of ``obs``.

    ``labels``: `label_strings` of the column (all None when it is absent); ``mask``: the cells to score,
    labelled and, when ``keep`` is non-empty, with a label among ``keep`` (compared as text);
    ``warning``: one line for the caller to log, or None: no cell can be scored (column missing, no cell
    labelled, ``keep`` matching nothing: the label metrics are then NaN), or some ``keep`` values occur in no
    cell. Every message gives the number of cells.
    """
    n = len(obs)
    keep = [t for t in (_label_text(k) for k in keep) if t is not None]
    nan = "the label metrics are NaN"
    if key not in obs.columns:
        cols = ", ".join(map(str, list(obs.columns)[:12])) or "none"
        return (np.full(n, None, dtype=object), np.zeros(n, dtype=bool),
                f"no cell scored (0 of {n} cells): there is no obs column {key!r} (label_key; obs columns: "
                f"{cols}); {nan}")
    labels = label_strings(obs[key])
    labelled = pd.notna(labels).astype(bool)
    if not labelled.any():
        return labels, labelled, (f"no cell scored (0 of {n} cells): obs[{key!r}] labels no cell (every value is "
                                  f"missing or an unlabelled marker); {nan}")
    if not keep:
        return labels, labelled, None
    present = set(labels[labelled])
    mask = labelled & np.isin(labels.astype(str), keep)
    absent = [k for k in keep if k not in present]
    if not mask.any():
        known = ", ".join(sorted(present)[:12]) + (", ..." if len(present) > 12 else "")
        return labels, mask, (f"no cell scored (0 of {n} cells): no label of obs[{key!r}] is among labels_keep "
                              f"({', '.join(keep)}; labels: {known}); {nan}")
    if absent:
        return labels, mask, (f"labels_keep value(s) {', '.join(absent)} label no cell of obs[{key!r}]; "
                              f"scoring {int(mask.sum())} of {n} cells")
    return labels, mask, None


def ari_nmi(labels, clusters) -> tuple[float, float, int]:
    """(ARI, NMI, number of labelled cells) of ``clusters`` against ``labels`` on labelled cells."""
    keep = labelled_mask(labels)
    n = int(keep.sum())
    if n == 0:
        return float("nan"), float("nan"), 0
    y = pd.Series(labels, dtype="object")[keep].astype(str).to_numpy()
    c = pd.Series(clusters, dtype="object")[keep].astype(str).to_numpy()
    return ari(y, c), nmi(y, c), n


def contingency(truth, pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contingency table ``[n_pred, n_true]`` and the sorted unique predicted / true values."""
    t_val, t_idx = np.unique(np.asarray(truth).astype(str), return_inverse=True)
    p_val, p_idx = np.unique(np.asarray(pred).astype(str), return_inverse=True)
    table = np.zeros((len(p_val), len(t_val)), dtype=np.int64)
    np.add.at(table, (p_idx, t_idx), 1)
    return table, p_val, t_val


def majority_mapping(truth, pred) -> dict:
    """Map each predicted cluster to its most frequent true label (the seed's mapping; many-to-one)."""
    table, p_val, t_val = contingency(truth, pred)
    return {p: t_val[j] for p, j in zip(p_val, table.argmax(axis=1))}


def accuracy_majority(truth, pred) -> float:
    """Fraction of cells whose cluster's majority label equals their label (the model-based clustering notebook's accuracy)."""
    table, _, _ = contingency(truth, pred)
    return float(table.max(axis=1).sum() / table.sum())


def hungarian_mapping(truth, pred) -> dict:
    """Optimal one-to-one map predicted cluster -> true label maximising agreement (unmatched: None)."""
    from scipy.optimize import linear_sum_assignment
    table, p_val, t_val = contingency(truth, pred)
    rows, cols = linear_sum_assignment(-table)
    mapping = {p: None for p in p_val}
    mapping.update({p_val[r]: t_val[c] for r, c in zip(rows, cols)})
    return mapping


def accuracy_hungarian(truth, pred) -> float:
    """Accuracy under the optimal one-to-one matching of clusters to labels (Hungarian algorithm)."""
    from scipy.optimize import linear_sum_assignment
    table, _, _ = contingency(truth, pred)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / table.sum())


def nmi(truth, pred) -> float:
    """Normalised mutual information (arithmetic normalisation, as scikit-learn)."""
    from sklearn.metrics import normalized_mutual_info_score
    return float(normalized_mutual_info_score(np.asarray(truth).astype(str), np.asarray(pred).astype(str)))


def ari(truth, pred) -> float:
    """Adjusted Rand index."""
    from sklearn.metrics import adjusted_rand_score
    return float(adjusted_rand_score(np.asarray(truth).astype(str), np.asarray(pred).astype(str)))


def log_loss(truth, resp, eps: float = 1e-16) -> float:
    """Mean per-cell negative log probability of the true label under soft assignments ``resp``.

    Clusters are mapped to labels with the majority mapping of the hard assignments; the
    probability of label ``l`` is the summed responsibility of the clusters mapped to ``l``
    (equal to the seed's log loss when the mapping is one-to-one; the seed reports the sum).
    """
    resp = np.asarray(resp, dtype=float)
    truth = np.asarray(truth).astype(str)
    pred = resp.argmax(axis=1)
    mapping = majority_mapping(truth, pred)
    col_label = np.array([mapping.get(str(c)) for c in range(resp.shape[1])], dtype=object)
    p_true = np.zeros(len(truth))
    for c in range(resp.shape[1]):
        hit = col_label[c] == truth
        p_true[hit] += resp[hit, c]
    return float(-np.mean(np.log(np.clip(p_true, eps, None)))) + 0.0


def label_correlation(truth, resp) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation ``[n_labels, k]`` of one-hot labels with responsibilities, and label names."""
    t_val, t_idx = np.unique(np.asarray(truth).astype(str), return_inverse=True)
    onehot = np.eye(len(t_val))[t_idx]
    resp = np.asarray(resp, dtype=float)
    a = onehot - onehot.mean(0)
    b = resp - resp.mean(0)
    denom = np.sqrt((a * a).sum(0))[:, None] * np.sqrt((b * b).sum(0))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a.T @ b) / denom
    return np.nan_to_num(r), t_val


def clustering_scores(truth, pred, resp=None) -> dict:
    """All label-agreement scores in one dict (accuracy_majority, accuracy_hungarian, nmi, ari[, log_loss])."""
    out = {"n_scored": int(len(truth)), "n_labels": int(len(np.unique(np.asarray(truth).astype(str)))),
           "n_clusters": int(len(np.unique(np.asarray(pred).astype(str)))),
           "accuracy_majority": accuracy_majority(truth, pred),
           "accuracy_hungarian": accuracy_hungarian(truth, pred),
           "nmi": nmi(truth, pred), "ari": ari(truth, pred)}
    if resp is not None:
        out["log_loss"] = log_loss(truth, resp)
    return out
