"""Held-out evaluation of matrix completion / imputation on count matrices.

Hide a seeded fraction of the nonzero entries of a cells x genes count matrix (they become zeros
in the training matrix), let a method predict the whole matrix, and score its predictions on the
hidden entries only: Pearson and Spearman correlation on ``log1p``, median absolute error and RMSE
on the counts scale. Two baselines come with it: no imputation (the hidden entries stay zero) and
a rank-k truncated SVD of ``log1p`` of the training matrix. Used by NeuMF densification and its
benchmark (MAGIC, scVI).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

METRICS = ("pearson_log1p", "spearman_log1p", "median_abs_error", "rmse")


@dataclass
class HeldOut:
    """Hidden entries of a count matrix: row/column indices and their observed counts."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.size)


def mask_nonzeros(x, frac: float, seed: int) -> tuple[sp.csr_matrix, HeldOut]:
    """Hide a seeded ``frac`` of the nonzero entries of ``x``.

    Returns the training matrix (CSR, same dtype, hidden entries removed, i.e. zero) and the
    hidden entries sorted by (row, column). ``frac == 0`` hides nothing. The choice depends only
    on ``seed`` and the sparsity pattern, so the same seed hides the same entries for every method.
    """
    x = sp.csr_matrix(x, copy=True)
    x.sum_duplicates()
    x.eliminate_zeros()
    x.sort_indices()
    nnz = x.nnz
    n_hide = int(round(frac * nnz))
    rows_all = np.repeat(np.arange(x.shape[0], dtype=np.int64), np.diff(x.indptr))
    if n_hide == 0:
        empty = np.zeros(0, dtype=np.int64)
        return x, HeldOut(empty, empty.copy(), np.zeros(0, dtype=np.float64))
    rng = np.random.default_rng(seed)
    hide = np.sort(rng.choice(nnz, size=n_hide, replace=False))
    held = HeldOut(rows_all[hide], x.indices[hide].astype(np.int64), x.data[hide].astype(np.float64))
    keep = np.ones(nnz, dtype=bool)
    keep[hide] = False
    train = sp.csr_matrix((x.data[keep], (rows_all[keep], x.indices[keep])), shape=x.shape, dtype=x.dtype)
    train.sort_indices()
    return train, held


def heldout_metrics(pred: np.ndarray, obs: np.ndarray) -> dict:
    """Scores of predictions ``pred`` against observed counts ``obs`` (1-d arrays, same length).

    Correlations are on ``log1p`` of both (negative predictions clipped to 0 first); they are NaN
    when either side is constant (e.g. the zero baseline). Errors are on the counts scale.
    """
    from scipy.stats import pearsonr, spearmanr
    pred = np.asarray(pred, dtype=np.float64)
    obs = np.asarray(obs, dtype=np.float64)
    if pred.shape != obs.shape:
        raise ValueError(f"pred and obs differ in shape: {pred.shape} vs {obs.shape}")
    out = {"n": int(obs.size)}
    if obs.size == 0:
        return {**out, **{k: float("nan") for k in METRICS}}
    lp, lo = np.log1p(np.clip(pred, 0, None)), np.log1p(obs)
    constant = np.ptp(lp) == 0 or np.ptp(lo) == 0 or obs.size < 2
    out["pearson_log1p"] = float("nan") if constant else float(pearsonr(lp, lo)[0])
    out["spearman_log1p"] = float("nan") if constant else float(spearmanr(lp, lo)[0])
    err = pred - obs
    out["median_abs_error"] = float(np.median(np.abs(err)))
    out["rmse"] = float(np.sqrt(np.mean(err ** 2)))
    return out


def svd_baseline(train, held: HeldOut, rank: int, seed: int) -> np.ndarray:
    """Predictions at the hidden entries from a rank-``rank`` truncated SVD of ``log1p(train)``.

    The reconstruction is mapped back with ``expm1`` and clipped at 0 (counts scale). Only the
    hidden entries are reconstructed, so memory stays at the size of the factors.
    """
    from sklearn.utils.extmath import randomized_svd
    x = sp.csr_matrix(train, dtype=np.float64)
    x.data = np.log1p(x.data)
    k = int(max(1, min(rank, min(x.shape) - 1)))
    u, s, vt = randomized_svd(x, n_components=k, random_state=seed)
    us = u * s
    rec = np.einsum("ij,ij->i", us[held.rows], vt.T[held.cols])
    return np.clip(np.expm1(rec), 0, None)


def evaluate(predictions: dict, held: HeldOut) -> pd.DataFrame:
    """A metrics table (one row per method) for a dict ``method -> predictions at held entries``."""
    rows = []
    for name, pred in predictions.items():
        rows.append({"method": name, **heldout_metrics(pred, held.values)})
    table = pd.DataFrame(rows, columns=["method", "n", *METRICS])
    table[list(METRICS)] = table[list(METRICS)].astype(float).round(6)  # stable bytes in TSVs
    return table


def baselines(train, held: HeldOut, rank: int, seed: int) -> dict:
    """Predictions of the two reference methods: ``zero`` (no imputation) and ``svd_rank<k>``."""
    return {"zero": np.zeros(len(held)), f"svd_rank{rank}": svd_baseline(train, held, rank, seed)}
