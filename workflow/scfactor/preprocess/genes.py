"""Gene selection: LIGER's variance threshold (per batch, union) and scanpy highly variable genes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numba import njit
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
    rliger / pyliger. The statistics are those of `LigerMoments` (of one block: the whole batch).
    """
    acc = LigerMoments(counts.shape[1])
    acc.add(counts)
    return acc.select(var_thresh, alpha_thresh)


class LigerMoments:
    """Per-gene sums of one batch's library-normalised counts, added block by block (cells in order): the
    mean and variance of `sparse_mean_var` with ``row_scale = 1 / library size``, to the last bit (`np.add.at`
    continues the sequential sums of `np.bincount`), and the cells' ``1 / library size`` for LIGER's ``nolan``."""

    def __init__(self, n_genes: int):
        self.sums, self.squares = np.zeros(n_genes), np.zeros(n_genes)
        self.n_cells, self.inv_lib, self.detected = 0, [], np.zeros(n_genes, np.int64)

    def add(self, counts) -> None:
        """Add a block of cells (counts, cells x genes)."""
        x = sp.csr_matrix(counts)
        self.detected += np.asarray((x != 0).sum(axis=0)).ravel()
        lib = np.asarray(x.sum(axis=1, dtype=np.float64)).ravel()
        keep = lib > 0
        if not keep.all():
            x, lib = x[keep], lib[keep]
        if not x.has_canonical_format:
            x = x.copy()
            x.sum_duplicates()
        inv = 1.0 / lib
        vals = x.data.astype(np.float64)
        vals *= np.repeat(np.asarray(inv, dtype=np.float64), np.diff(x.indptr))
        np.add.at(self.sums, x.indices, vals)
        np.add.at(self.squares, x.indices, np.square(vals, out=vals))
        self.n_cells += x.shape[0]
        self.inv_lib.append(inv)

    def select(self, var_thresh: float, alpha_thresh: float) -> np.ndarray:
        """The LIGER mask of the cells added so far (see `liger_select`)."""
        n = self.n_cells
        mean, sq = self.sums / n, self.squares / n
        var = np.maximum((sq - mean ** 2) * n / max(n - 1, 1), 0.0)
        n_genes = max(int((mean > 0).sum()), 1)
        nolan = np.mean(np.concatenate(self.inv_lib))
        alpha = alpha_thresh / n_genes
        upper = mean + norm.ppf(1 - alpha / 2) * np.sqrt(mean * nolan / n)
        with np.errstate(divide="ignore", invalid="ignore"):
            sel = (var / nolan > upper) & (np.log10(var) > np.log10(mean) + (np.log10(nolan) + var_thresh))
        return np.nan_to_num(sel, nan=0).astype(bool) & (mean > 0)


def liger_select_union(counts, batches: np.ndarray, var_thresh: float = 0.1,
                       alpha_thresh: float = 0.99) -> np.ndarray:
    """Union over batches of `liger_select` (LIGER's ``combine='union'``), restricted to genes expressed
    in every batch (LIGER's ``keep_unique=False``)."""
    acc = {b: LigerMoments(counts.shape[1]) for b in np.unique(batches)}
    for b, a in acc.items():
        a.add(counts[batches == b])
    return liger_union(acc, var_thresh, alpha_thresh)


def liger_union(moments: dict, var_thresh: float, alpha_thresh: float) -> np.ndarray:
    """The union of the batches' LIGER masks (`LigerMoments` per batch), genes expressed in every batch."""
    mask = np.zeros(len(next(iter(moments.values())).sums), dtype=bool)
    expressed = np.ones_like(mask)
    for b in sorted(moments):
        mask |= moments[b].select(var_thresh, alpha_thresh)
        expressed &= moments[b].detected > 0
    return mask & expressed


@njit(cache=True)
def _strided_sums(data, indices, indptr, first_row, sums, squares):  # pragma: no cover (compiled)
    """scanpy's ``sparse_mean_var_minor_axis`` loop: row r adds to accumulator row (first_row + r) % T."""
    t = sums.shape[0]
    for r in range(len(indptr) - 1):
        i = (first_row + r) % t
        for j in range(indptr[r], indptr[r + 1]):
            value = data[j]
            sums[i, indices[j]] += value
            squares[i, indices[j]] += value * value


@njit(cache=True)
def _strided_mean_var(sums, squares, n):  # pragma: no cover (compiled)
    means, variances = np.zeros(sums.shape[1]), np.zeros(sums.shape[1])
    for c in range(sums.shape[1]):
        s = sums[:, c].sum()
        means[c] = s / n
        variances[c] = squares[:, c].sum() / n - (s / n) ** 2
    return means, variances


class SeuratMoments:
    """Per-gene mean and variance of ``expm1(X)`` of one batch, added block by block: the numbers scanpy's
    ``highly_variable_genes`` (seurat flavour) computes on the whole batch, to the last bit (its per-thread
    sums, in row order), and the genes' cell counts (scanpy drops unexpressed genes per batch)."""

    def __init__(self, n_genes: int):
        import numba
        t = numba.get_num_threads()
        self.sums, self.squares = np.zeros((t, n_genes)), np.zeros((t, n_genes))
        self.n_cells, self.detected = 0, np.zeros(n_genes, np.int64)

    def add(self, x) -> None:
        """Add a block of cells (log-normalised float32 CSR, cells x genes)."""
        x = sp.csr_matrix(x)
        self.detected += np.asarray((x > 0).sum(axis=0)).ravel()
        _strided_sums(np.expm1(x.data), x.indices, x.indptr, self.n_cells, self.sums, self.squares)
        self.n_cells += x.shape[0]

    def mean_var(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unbiased variance per gene (scanpy's ``_get_mean_var``)."""
        mean, var = _strided_mean_var(self.sums, self.squares, self.n_cells)
        if self.n_cells != 1:
            var *= self.n_cells / (self.n_cells - 1)
        return mean, var


def _seurat_one_batch(moments: SeuratMoments, var_names, n_top: int, filter_unexpressed: bool) -> pd.DataFrame:
    """scanpy's ``_highly_variable_genes_single_batch`` (seurat flavour, ``n_top_genes``) from the moments."""
    from scanpy.preprocessing._highly_variable_genes import _get_disp_stats, _get_mean_bins, _nth_highest
    filt = moments.detected > 0 if filter_unexpressed else np.ones(len(var_names), bool)
    mean, var = (v[filt] for v in moments.mean_var())
    mean[mean == 0] = 1e-12
    dispersion = var / mean
    dispersion[dispersion == 0] = np.nan
    dispersion = np.log(dispersion)
    mean = np.log1p(mean)
    df = pd.DataFrame({"means": mean, "dispersions": dispersion})
    df["mean_bin"] = _get_mean_bins(df["means"], "seurat", 20)
    stats = _get_disp_stats(df, "seurat")
    df["dispersions_norm"] = (df["dispersions"] - stats["avg"]) / stats["dev"]
    norm_disp = df["dispersions_norm"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cut = _nth_highest(norm_disp, min(n_top, int(filt.sum())))
    df["highly_variable"] = np.nan_to_num(norm_disp, nan=-np.inf) >= cut
    df.index = pd.Index(var_names)[filt]
    if (~filt).any():
        missing = pd.DataFrame(np.zeros(((~filt).sum(), len(df.columns))), columns=df.columns)
        missing["highly_variable"] = missing["highly_variable"].astype(bool)
        missing.index = pd.Index(var_names)[~filt]
        df = pd.concat([df, missing]).loc[var_names]
    return df


def seurat_hvg(moments: dict, var_names, n_top: int) -> np.ndarray:
    """scanpy ``highly_variable_genes(flavor='seurat', n_top_genes=n_top, batch_key=...)`` as a mask, from the
    `SeuratMoments` of each batch (in category order; one batch: no batch key)."""
    var_names = pd.Index(var_names)
    n_top = min(n_top, len(var_names))
    if len(moments) == 1:
        return _seurat_one_batch(next(iter(moments.values())), var_names, n_top, False)["highly_variable"].to_numpy(bool)
    df = pd.concat([_seurat_one_batch(m, var_names, n_top, True) for m in moments.values()], axis=0)
    df["highly_variable"] = df["highly_variable"].astype(int)
    df = df.groupby(df.index, observed=True).agg(dict(means="mean", dispersions="mean", dispersions_norm="mean",
                                                      highly_variable="sum"))
    df["highly_variable_nbatches"] = df["highly_variable"]
    df.sort_values(["highly_variable_nbatches", "dispersions_norm"], ascending=False, na_position="last",
                   inplace=True)
    df["highly_variable"] = np.arange(df.shape[0]) < n_top
    return df.loc[var_names, "highly_variable"].to_numpy(bool)
