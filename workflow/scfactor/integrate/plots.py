"""Figures of the integrate step (the NeuMF/LIGER notebook): UMAPs by batch / cluster per source, metric
bars."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _scatter(ax, xy, values, title, max_legend=30):
    import matplotlib.pyplot as plt
    cats = pd.Categorical(values)
    if all(str(c).isdigit() for c in cats.categories):  # cluster ids: 0, 1, 2, ..., 10 (not 0, 1, 10)
        cats = cats.reorder_categories(sorted(cats.categories, key=int))
    cmap = plt.get_cmap("tab20" if len(cats.categories) > 10 else "tab10")
    order = np.random.default_rng(0).permutation(len(xy))  # no batch drawn entirely on top
    colors = np.array([cmap(i % cmap.N) for i in range(len(cats.categories))])
    ax.scatter(xy[order, 0], xy[order, 1], c=colors[cats.codes[order]], s=3, linewidths=0, rasterized=True)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_xticks([])
    ax.set_yticks([])
    if len(cats.categories) <= max_legend:
        handles = [plt.Line2D([], [], marker="o", ls="", color=colors[i], label=str(c))
                   for i, c in enumerate(cats.categories)]
        ax.legend(handles=handles, fontsize=7, markerscale=1.2, frameon=False, loc="center left",
                  bbox_to_anchor=(1.0, 0.5), ncol=1 if len(handles) <= 15 else 2)


def umap_figure(runs: dict, dataset: str):
    """One (batch, cluster) UMAP panel pair per source, side by side. ``runs``: source -> AnnData. Cells
    without coordinates (outside the integrate step's UMAP subsample) are left out and the title says so."""
    import matplotlib.pyplot as plt
    n = len(runs)
    fig, axes = plt.subplots(1, 2 * n, figsize=(9.5 * n, 4.2), squeeze=False)
    notes = []
    for j, (source, a) in enumerate(runs.items()):
        xy = np.asarray(a.obsm["X_umap"])
        shown = np.isfinite(xy).all(1)  # cells outside a UMAP subsample (umap_max_cells) have NaN coordinates
        if not shown.all():
            notes.append(f"{source}: random subsample of {shown.sum():,} of {len(xy):,} cells")
        obs = a.obs[shown]
        _scatter(axes[0, 2 * j], xy[shown], obs["batch"].astype(str), f"{source}: coloured by batch")
        _scatter(axes[0, 2 * j + 1], xy[shown], obs["leiden"].astype(str),
                 f"{source}: Leiden clusters ({a.obs['leiden'].nunique()})")
    fig.suptitle(f"{dataset}: LIGER-style iNMF integration (UMAP of quantile-normalised loadings)"
                 + (f"\nUMAP of {'; '.join(notes)}" if notes else ""))
    fig.tight_layout()
    return fig


def metrics_figure(tables: dict, dataset: str):
    """Bars per source: ARI / NMI against labels (all labelled cells and per batch, with the number
    of labelled cells), alignment before / after quantile normalisation and agreement."""
    import matplotlib.pyplot as plt
    sources = list(tables)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    first = tables[sources[0]]
    scopes = [s for s in first.loc[first["metric"] == "ari", "batch"]]
    nlab = first[first["metric"] == "n_labelled"].set_index("batch")
    groups = [(m, s) for m in ("ari", "nmi") for s in scopes]
    width = 0.8 / len(sources)
    x = np.arange(len(groups))
    for i, src in enumerate(sources):
        t = tables[src].set_index(["metric", "batch"])["value"]
        vals = [t.get((m, s), np.nan) for m, s in groups]
        ax1.bar(x + (i - (len(sources) - 1) / 2) * width, vals, width, label=src)
    ax1.set_xticks(x)
    ax1.set_xticklabels([f"{m.upper()}\n{s}\n(n={int(nlab.loc[s, 'value'])})" for m, s in groups], fontsize=8)
    ax1.set_ylabel("score vs reference labels")
    ax1.set_ylim(0, 1)
    ax1.set_title("Leiden clusters vs labels (labelled cells only)", fontsize=10)
    ax1.legend(title="source", fontsize=8)
    mets = [("alignment_raw", "alignment\n(H, before QN)"), ("alignment", "alignment\n(H_norm)"),
            ("agreement", "agreement")]
    x2 = np.arange(len(mets))
    for i, src in enumerate(sources):
        t = tables[src].set_index(["metric", "batch"])["value"]
        ax2.bar(x2 + (i - (len(sources) - 1) / 2) * width, [t.get((m, "all"), np.nan) for m, _ in mets],
                width, label=src)
    ax2.set_xticks(x2)
    ax2.set_xticklabels([lab for _, lab in mets], fontsize=8)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("score (1 = perfectly mixed / preserved)")
    ax2.set_title("batch mixing and structure preservation", fontsize=10)
    ax2.legend(title="source", fontsize=8)
    fig.suptitle(f"{dataset}: integration metrics per source")
    fig.tight_layout()
    return fig
