"""Generic clustering metrics: accuracy (majority and one-to-one matching), NMI, ARI, log loss.

All functions take 1-d label arrays (any hashable values) and, for the soft metrics, an ``[n, k]``
matrix of responsibilities whose columns are the predicted clusters ``0..k-1``. Cells whose true
label is missing (None/NaN) must be removed by the caller (`labelled_mask`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def labelled_mask(labels) -> np.ndarray:
    """Boolean mask of the cells that carry a label (not NaN / None)."""
    return pd.notna(pd.Series(np.asarray(labels, dtype=object))).to_numpy()


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
    """Fraction of cells whose cluster's majority label equals their label (seed 004's accuracy)."""
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
