"""Per-cell quality metrics, filters and the QC summary table / figure."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp


def mito_mask(gene_names, mito_pattern: str = r"^(MT|mt|Mt)-") -> np.ndarray:
    """Boolean mask of the gene names (symbols) that match the mitochondrial pattern."""
    pattern = re.compile(mito_pattern)
    return np.array([bool(pattern.match(str(g))) for g in gene_names], dtype=bool)


def cell_metrics(counts, gene_names, mito_pattern: str = r"^(MT|mt|Mt)-") -> pd.DataFrame:
    """Total counts, detected genes and mitochondrial fraction per cell."""
    x = sp.csr_matrix(counts)
    total = np.asarray(x.sum(axis=1)).ravel()
    detected = np.diff(x.indptr)
    mito = mito_mask(gene_names, mito_pattern)
    mito_counts = np.asarray(x[:, mito].sum(axis=1)).ravel() if mito.any() else np.zeros_like(total)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(total > 0, mito_counts / total, 0.0)
    return pd.DataFrame({"n_counts": total.astype(np.int64), "n_genes": detected.astype(np.int64),
                         "pct_mito": 100.0 * frac})


def cell_filter(metrics: pd.DataFrame, min_genes: int = 0, min_counts: int = 1,
                max_pct_mito: float = 100.0) -> np.ndarray:
    """Boolean mask of cells passing the thresholds (cells with no counts always fail)."""
    return ((metrics["n_counts"] >= max(min_counts, 1)) & (metrics["n_genes"] >= min_genes)
            & (metrics["pct_mito"] <= max_pct_mito)).to_numpy()


def qc_summary(metrics: pd.DataFrame, batches: pd.Series, kept: np.ndarray) -> pd.DataFrame:
    """Per-batch table: cells in, cells kept, median counts / genes / mito % of kept cells."""
    df = metrics.assign(batch=np.asarray(batches), kept=kept)
    rows = []
    for b, g in df.groupby("batch", observed=True, sort=True):
        k = g[g["kept"]]
        rows.append({"batch": b, "cells_in": len(g), "cells_kept": len(k),
                     "median_counts": float(k["n_counts"].median()) if len(k) else 0.0,
                     "median_genes": float(k["n_genes"].median()) if len(k) else 0.0,
                     "median_pct_mito": float(k["pct_mito"].median()) if len(k) else 0.0})
    return pd.DataFrame(rows)


#: batches keeping fewer cells are not checked by `low_depth_batches` (an unfiltered droplet matrix has 10^5 and more
#: barcodes; toy data sets of a few genes have low totals by design)
LOW_DEPTH_MIN_CELLS = 1000


def low_depth_batches(summary: pd.DataFrame, min_median_counts: int) -> pd.DataFrame:
    """The rows of `qc_summary`'s table whose kept cells, at least `LOW_DEPTH_MIN_CELLS`, have a median total count
    below ``min_median_counts`` (0: none): batches that look like unfiltered droplet matrices, mostly empty barcodes
    of a few UMIs each."""
    return summary[(summary["cells_kept"] >= LOW_DEPTH_MIN_CELLS) & (summary["median_counts"] < min_median_counts)]
