"""Real-data inputs for MTL: steady-state RNA velocity and prior-derived TF activity (the notebook's layout).

Velocity (the deterministic "steady-state" model of velocyto / scVelo): spliced and unspliced
counts are size-normalised per layer, smoothed over a kNN graph of the cells (first moments
``Ms``, ``Mu``); per gene, ``gamma`` is the least-squares slope through the origin of ``Mu`` on
``Ms`` over the cells in the extreme quantiles (both low and high) of ``Ms/max + Mu/max``;
velocity = ``Mu - gamma * Ms``. A cell's velocity of a gene is missing (NaN) when the cell has
neither a spliced nor an unspliced read of it.

TF activity: the trace-norm MTL notebook derives gene x TF "mean" and "sum" activities from ATAC peaks linked to
genes. No ATAC exists for the bundled pancreas set, so a curated prior stands in: the DoRothEA
mouse TF -> target edges (confidence A-C), TFs restricted to the Lambert 2018 human census mapped
to mouse orthologs. ``mean[TF, gene]`` = mode of regulation (+1/-1) x confidence weight;
``sum[TF, gene]`` = confidence weight x the TF's mean expression (CPM) in the tissue. Genes
without an edge from a TF get 0, as in the notebook.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.errors import InputError

CONFIDENCE_WEIGHT = {"A": 1.0, "B": 0.75, "C": 0.5, "D": 0.25, "E": 0.125}


def dense(x):
    """A dense float64 copy of a (sparse) matrix."""
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)


def size_normalise(x):
    """Counts scaled to the median library size of the layer (cells x genes, dense)."""
    tot = x.sum(axis=1, keepdims=True)
    med = np.median(tot[tot > 0]) if (tot > 0).any() else 1.0
    return x / np.where(tot > 0, tot, 1.0) * med


def knn_moments(s, u, n_neighbors: int, n_pcs: int, seed: int):
    """First moments of spliced/unspliced over each cell's kNN (PCA of log1p spliced)."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors
    k = max(1, min(n_neighbors, s.shape[0]))
    ncomp = max(1, min(n_pcs, s.shape[0] - 1, s.shape[1] - 1))
    pcs = PCA(n_components=ncomp, random_state=seed, svd_solver="full").fit_transform(np.log1p(s))
    nn = NearestNeighbors(n_neighbors=k).fit(pcs)
    _, ind = nn.kneighbors(pcs)
    rows = np.repeat(np.arange(s.shape[0]), k)
    conn = sp.csr_matrix((np.full(rows.size, 1.0 / k), (rows, ind.ravel())), shape=(s.shape[0],) * 2)
    return conn @ s, conn @ u


def steady_state_gamma(ms, mu, perc: float):
    """Per-gene gamma on extreme-quantile cells (scVelo's ``perc=[5, 95]``), slope through the origin."""
    def scaled(m):
        mx = m.max(axis=0)
        return m / np.where(mx > 0, mx, 1.0)
    w = scaled(ms) + scaled(mu)
    lo = np.percentile(w, perc, axis=0)
    hi = np.percentile(w, 100 - perc, axis=0)
    ext = (w <= lo) | (w >= hi)
    num = (ext * ms * mu).sum(0)
    den = (ext * ms * ms).sum(0)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def steady_state_velocity(spliced, unspliced, *, min_shared_counts: int, n_neighbors: int, n_pcs: int,
                          perc: float, seed: int, path="input"):
    """Velocity (cells x kept genes, NaN = no read), gamma and the kept-gene mask from raw counts."""
    s_raw, u_raw = dense(spliced), dense(unspliced)
    if s_raw.shape != u_raw.shape:
        raise InputError(path, f"spliced {s_raw.shape} and unspliced {u_raw.shape} layers differ in shape")
    for name, m in (("spliced", s_raw), ("unspliced", u_raw)):
        if not np.isfinite(m).all() or (m < 0).any():
            raise InputError(path, f"layer {name!r} has negative, NaN or infinite counts")
    keep = (s_raw.sum(0) >= min_shared_counts) & (u_raw.sum(0) >= min_shared_counts)
    if not keep.any():
        raise InputError(path, f"no gene has >= {min_shared_counts} spliced and unspliced counts")
    s = size_normalise(s_raw)[:, keep]
    u = size_normalise(u_raw)[:, keep]
    ms, mu = knn_moments(s, u, n_neighbors=n_neighbors, n_pcs=n_pcs, seed=seed)
    gamma = steady_state_gamma(ms, mu, perc=perc)
    ok = np.isfinite(gamma) & (gamma > 0)
    velo = mu[:, ok] - gamma[ok] * ms[:, ok]
    seen = ((s_raw[:, keep] + u_raw[:, keep]) > 0)[:, ok]
    velo = np.where(seen, velo, np.nan)
    mask = np.zeros(len(keep), dtype=bool)
    mask[np.where(keep)[0][ok]] = True
    return velo, gamma[ok], mask


def mouse_tf_symbols(lambert_human, orthologs: pd.DataFrame) -> set:
    """Mouse symbols of the Lambert human TFs (ortholog table: human, mouse; empty = none)."""
    o = orthologs.dropna()
    return set(o.loc[o.iloc[:, 0].isin(set(lambert_human)), o.columns[1]].astype(str))


def prior_activity(prior: pd.DataFrame, tfs, genes, tf_cpm: pd.Series, confidences):
    """(mean, sum) TF x gene activity tables from a DoRothEA-style prior (see module docstring)."""
    p = prior.loc[prior["confidence"].isin(confidences) & prior["tf"].isin(set(tfs))
                  & prior["target"].isin(set(genes))]
    tf_index = pd.Index(sorted(set(p["tf"])))
    gene_index = pd.Index(list(genes))
    mean = np.zeros((len(tf_index), len(gene_index)))
    summ = np.zeros_like(mean)
    if len(p):
        w = p["confidence"].map(CONFIDENCE_WEIGHT).to_numpy(float)
        r = tf_index.get_indexer(p["tf"])
        c = gene_index.get_indexer(p["target"])
        mean[r, c] = p["mor"].to_numpy(float) * w
        summ[r, c] = w * tf_cpm.reindex(p["tf"]).fillna(0).to_numpy(float)
    return (pd.DataFrame(mean, index=tf_index, columns=gene_index),
            pd.DataFrame(summ, index=tf_index, columns=gene_index))
