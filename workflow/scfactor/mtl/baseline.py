"""The trace-norm MTL notebook's steps around the model: per-gene lasso baseline, gene selection, balanced gene clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import InputError
from .data import r2_score, split_cells
from .lasso_cv import lasso_cv


def candidate_genes(data, min_cells: int) -> np.ndarray:
    """Velocity genes with velocity in >= ``min_cells`` cells and a column in the activity tables."""
    n_obs = (~np.isnan(data.velo)).sum(axis=0)
    return data.gene_ids[(n_obs >= min_cells) & data.in_activity]


def lasso_splits(expr, y, reps, test_ratio, seed, cv):
    """Per replicate: (rep, x_train, y_train, x_test, y_test), the TF expression standardised with the training
    cells' statistics, cells without velocity left out; the arrays are None when a split has too few cells."""
    ok = ~np.isnan(y)
    for rep in reps:
        tr, te = split_cells(len(y), test_ratio, seed, rep)
        tr, te = tr[ok[tr]], te[ok[te]]
        if len(tr) < max(cv, 3) or len(te) < 2:
            yield rep, None, y[tr], None, y[te]
            continue
        mu, sd = expr[tr].mean(0), expr[tr].std(0)
        sd = np.where(sd > 0, sd, 1.0)
        yield rep, (expr[tr] - mu) / sd, y[tr], (expr[te] - mu) / sd, y[te]


def lasso_gene(expr, y, reps, test_ratio, seed, cv, n_alphas, max_iter):
    """Test R2 (and chosen alpha) of LassoCV on standardised TF expression, per replicate split."""
    rows = []
    for rep, xtr, ytr, xte, yte in lasso_splits(expr, y, reps, test_ratio, seed, cv):
        if xtr is None:
            rows.append((rep, np.nan, np.nan, len(ytr), len(yte)))
            continue
        alpha, coef, intercept = lasso_cv(xtr, ytr, cv, n_alphas, max_iter)
        rows.append((rep, alpha, r2_score(yte, xte @ coef + intercept), len(ytr), len(yte)))
    return rows


def run_lasso(data, genes, reps, *, test_ratio, seed, cv, n_alphas, max_iter, threads):
    """The lasso table (tissue, gene_ensembl, rep, alpha, r2, n_train, n_test) for ``genes``."""
    from joblib import Parallel, delayed
    pos = pd.Index(data.gene_ids).get_indexer(pd.Index(genes))
    expr = data.expr.astype(np.float64)
    res = Parallel(n_jobs=max(1, threads), prefer="processes" if threads > 1 else None)(
        delayed(lasso_gene)(expr, data.velo[:, p].astype(np.float64), reps, test_ratio, seed, cv,
                            n_alphas, max_iter) for p in pos)
    rows = [(data.tissue, g, *r) for g, rr in zip(genes, res) for r in rr]
    df = pd.DataFrame(rows, columns=["tissue", "gene_ensembl", "rep", "alpha", "r2", "n_train", "n_test"])
    return df


def select_genes(data, lasso: pd.DataFrame, min_cells: int, num_genes: int, seed: int, path="lasso"):
    """The notebook's step 3: genes in the lasso table with velocity in >= min_cells cells; a seeded random num_genes."""
    cand = set(candidate_genes(data, min_cells))
    in_lasso = pd.unique(lasso.loc[lasso["tissue"] == data.tissue, "gene_ensembl"].astype(str))
    genes = np.array([g for g in in_lasso if g in cand], dtype=object)
    if len(genes) == 0:
        raise InputError(path, f"no gene of tissue {data.tissue!r} has velocity in >= {min_cells} cells "
                               "and a lasso result")
    rng = np.random.default_rng(seed)
    if num_genes < len(genes):
        genes = genes[np.sort(rng.choice(len(genes), size=num_genes, replace=False))]
    return genes


def impute_mean(velo) -> np.ndarray:
    """Missing velocities replaced by the gene's mean over the cells that have one (the notebook's step 4)."""
    mean = np.nanmean(velo, axis=0)
    return np.where(np.isnan(velo), mean[None, :], velo)


def cluster_genes(velo, n_clusters: int, seed: int, path="genes"):
    """Balanced KMeansConstrained labels of genes (columns of ``velo``), size floor/ceil(G/n)."""
    from k_means_constrained import KMeansConstrained
    G = velo.shape[1]
    if n_clusters > G:
        raise InputError(path, f"{n_clusters} clusters requested but only {G} genes selected: "
                               "a cluster would have no genes")
    if n_clusters == 1:
        return np.zeros(G, dtype=int)
    km = KMeansConstrained(n_clusters=n_clusters, size_min=G // n_clusters, size_max=-(-G // n_clusters),
                           random_state=seed, n_init=10)
    return np.asarray(km.fit_predict(impute_mean(velo).T.astype(np.float64)), dtype=int)
