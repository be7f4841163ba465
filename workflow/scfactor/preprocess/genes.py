"""Gene selection: LIGER's variance threshold (per batch, union) and scanpy highly variable genes."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import norm


def sparse_mean_var(x, row_scale=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and unbiased variance of a (sparse) cells x genes matrix, without densifying.

    ``row_scale`` (optional, one factor per row) scales the rows on the fly: a sparse matrix is read through
    its non-zeros (column sums by `np.bincount`), never copied as a whole.
    """
    n = x.shape[0]
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        if not x.has_canonical_format:
            x = x.copy()
            x.sum_duplicates()
        vals = x.data.astype(np.float64)
        if row_scale is not None:
            vals *= np.repeat(np.asarray(row_scale, dtype=np.float64), np.diff(x.indptr))
        mean = np.bincount(x.indices, weights=vals, minlength=x.shape[1]) / n
        sq = np.bincount(x.indices, weights=np.square(vals, out=vals), minlength=x.shape[1]) / n
    else:
        x = np.asarray(x, dtype=np.float64)
        if row_scale is not None:
            x = x * np.asarray(row_scale, dtype=np.float64)[:, None]
        mean = x.mean(axis=0)
        sq = (x * x).mean(axis=0)
    var = (sq - mean ** 2) * n / max(n - 1, 1)
    return mean, np.maximum(var, 0.0)


def liger_select(counts, var_thresh: float = 0.1, alpha_thresh: float = 0.99) -> np.ndarray:
    """LIGER ``selectGenes`` for one batch: a boolean mask of over-dispersed genes.

    On library-size normalised data (each cell sums to 1), a gene is kept when its variance
    exceeds the Poisson expectation (``mean * nolan``, ``nolan = mean(1 / library size)``) by more
    than ``10**var_thresh`` and its mean is significant at ``alpha_thresh`` (Bonferroni over the genes
    expressed in the batch: LIGER drops unexpressed genes per data set before selecting), following
    rliger / pyliger.
    """
    x = sp.csr_matrix(counts)
    lib = np.asarray(x.sum(axis=1, dtype=np.float64)).ravel()
    keep_cells = lib > 0
    if not keep_cells.all():
        x, lib = x[keep_cells], lib[keep_cells]
    mean, var = sparse_mean_var(x, row_scale=1.0 / lib)  # of the library-normalised counts, without a copy
    n_cells = x.shape[0]
    n_genes = max(int((mean > 0).sum()), 1)
    nolan = np.mean(1.0 / lib)
    alpha = alpha_thresh / n_genes
    upper = mean + norm.ppf(1 - alpha / 2) * np.sqrt(mean * nolan / n_cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        sel = (var / nolan > upper) & (np.log10(var) > np.log10(mean) + (np.log10(nolan) + var_thresh))
    return np.nan_to_num(sel, nan=0).astype(bool) & (mean > 0)


def liger_select_union(counts, batches: np.ndarray, var_thresh: float = 0.1,
                       alpha_thresh: float = 0.99) -> np.ndarray:
    """Union over batches of `liger_select` (LIGER's ``combine='union'``), restricted to genes expressed
    in every batch (LIGER's ``keep_unique=False``)."""
    mask = np.zeros(counts.shape[1], dtype=bool)
    expressed = np.ones(counts.shape[1], dtype=bool)
    for b in np.unique(batches):
        sub = sp.csr_matrix(counts[batches == b])
        mask |= liger_select(sub, var_thresh, alpha_thresh)
        expressed &= np.asarray((sub != 0).sum(axis=0)).ravel() > 0
    return mask & expressed


def hvg_select(adata, n_top: int, batch_key: str | None = "batch") -> np.ndarray:
    """scanpy ``highly_variable_genes`` (seurat flavour on log-normalised ``X``) as a mask."""
    import scanpy as sc
    n_top = min(n_top, adata.n_vars)
    key = batch_key if batch_key and adata.obs[batch_key].nunique() > 1 else None
    res = sc.pp.highly_variable_genes(adata, n_top_genes=n_top, batch_key=key, inplace=False)
    return res["highly_variable"].to_numpy(bool)
