"""Figures of the multilayer NMF (the multilayer NMF notebook): theta clustermaps and top gene loadings.

Each function returns a seaborn ClusterGrid; the CLI saves it with `scfactor.core.plotting.save_figure`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..core import plotting  # noqa: F401  (sets the matplotlib backend once)

# seaborn suggests fastcluster for > 1000 rows; scipy is fast enough at our sizes
warnings.filterwarnings("ignore", message="Clustering large matrix with scipy")


def _label_colors(labels):
    """Row colours for categorical labels (None when there are none) and a legend handle list."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    lab = pd.Series(labels).astype(object).where(pd.notna(labels), "unlabelled").astype(str)
    cats = sorted(lab.unique())
    cmap = plt.get_cmap("tab20" if len(cats) > 10 else "tab10")
    colors = {c: cmap(i % cmap.N) for i, c in enumerate(cats)}
    return lab.map(colors).to_numpy(), [Patch(color=colors[c], label=c) for c in cats]


def theta_clustermap(theta: np.ndarray, level: int, title: str, *, max_rows: int, seed: int, row_labels=None,
                     label_name: str = "label"):
    """Clustered heatmap of ``theta_l<level>`` (rows: cells for layer 1, factors of the previous layer after).

    Each row is scaled to sum 1 (factor composition). Layer-1 rows are subsampled to ``max_rows``
    (seeded) and coloured by ``row_labels`` when given.
    """
    import seaborn as sns
    theta = np.asarray(theta, float)
    idx = np.arange(theta.shape[0])
    if len(idx) > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_rows, replace=False))
    t = theta[idx]
    t = t / np.maximum(t.sum(axis=1, keepdims=True), 1e-12)
    prev = "cell" if level == 1 else f"layer-{level - 1} factor"
    df = pd.DataFrame(t, columns=[f"f{j}" for j in range(t.shape[1])],
                      index=[f"{prev[:1]}{i}" for i in idx] if level == 1 else [f"l{level - 1}f{i}" for i in idx])
    kw = {}
    handles = None
    if row_labels is not None and level == 1:
        kw["row_colors"], handles = _label_colors(np.asarray(row_labels)[idx])
    many = len(df) > 60
    grid = sns.clustermap(df, method="ward", cmap="viridis", yticklabels=not many, xticklabels=True,
                          figsize=(7, 8 if many else max(4, 0.3 * len(df) + 2)),
                          cbar_kws={"label": "share of row"}, **kw)
    grid.ax_heatmap.set_xlabel(f"layer-{level} factor")
    grid.ax_heatmap.set_ylabel(f"{prev}s ({len(df)}{' sampled' if len(idx) < theta.shape[0] else ''})")
    grid.figure.suptitle(title, y=1.02)
    if handles:
        grid.ax_heatmap.legend(handles=handles, title=label_name, bbox_to_anchor=(1.25, 1.0), loc="upper left",
                               fontsize=7, title_fontsize=8, frameon=False)
    return grid


def top_genes(beta: np.ndarray, genes, top_n: int) -> list:
    """Union of the ``top_n`` highest-loading genes of each factor (factor order, first seen kept)."""
    beta = np.asarray(beta)
    order = np.argsort(-beta, axis=0, kind="stable")[:top_n]
    seen = dict.fromkeys(np.asarray(genes)[order.T.ravel()])
    return list(seen)


def gene_loading_clustermap(beta: np.ndarray, genes, level: int, title: str, *, top_n: int,
                            max_thresh: float | None):
    """The notebook's ``plot_gene_loading``: the top-``top_n`` genes of every factor (union) x factors,
    loadings clipped at ``max_thresh`` (None: no clipping), rows and columns clustered (viridis)."""
    import seaborn as sns
    genes = pd.Index(genes).astype(str)
    df = pd.DataFrame(np.asarray(beta, float), index=genes, columns=[f"f{j}" for j in range(beta.shape[1])])
    df = df.loc[~df.index.duplicated(keep="first")]
    df = df.loc[top_genes(df.to_numpy(), df.index, top_n)]
    if max_thresh is not None:
        df = df.clip(upper=max_thresh)
    grid = sns.clustermap(df, method="ward", cmap="viridis", yticklabels=True, xticklabels=True,
                          figsize=(max(5, 0.35 * df.shape[1] + 3), max(6, 0.13 * len(df) + 2)),
                          cbar_kws={"label": "loading" + (f" (clipped at {max_thresh:g})" if max_thresh else "")})
    grid.ax_heatmap.tick_params(axis="y", labelsize=5 if len(df) > 80 else 7)
    grid.ax_heatmap.set_xlabel(f"layer-{level} factor")
    grid.ax_heatmap.set_ylabel(f"top {top_n} genes per factor ({len(df)} genes)")
    grid.figure.suptitle(title, y=1.01)
    return grid
