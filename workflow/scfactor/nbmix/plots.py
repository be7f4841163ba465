"""Figures of the NB-mixture analysis (the model-based clustering notebook): UMAP triptych, label correlation,
Poisson vs NB, metrics table. Each function returns a matplotlib figure; the CLI saves it (png + pdf)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import plotting  # noqa: F401  (sets the backend)


def _categorical_scatter(ax, xy, labels, title, cmap="tab10"):
    import matplotlib.pyplot as plt
    cats = pd.Series(labels).astype(str)
    order = sorted(cats.unique(), key=lambda c: (len(c), c))
    named = [c for c in order if c != "unlabelled"]
    cm = plt.get_cmap(cmap if len(named) <= 10 else "tab20")
    for c in named + (["unlabelled"] if "unlabelled" in order else []):
        sel = (cats == c).to_numpy()
        color = "0.75" if c == "unlabelled" else cm(named.index(c) % cm.N)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=color, label=f"{c} ({sel.sum()})", lw=0)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("UMAP 1")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(frameon=False, fontsize=7, markerscale=3, loc="upper center", bbox_to_anchor=(0.5, -0.08),
              ncol=2, handletextpad=0.1)


def umap_triptych(xy, labels, label_title, leiden, nbmix, dataset):
    """UMAP coloured by labels (if any), Leiden clusters and NB-mixture clusters, side by side. Cells without
    coordinates (outside the baseline's UMAP subsample, ``umap_max_cells``) are left out and the title says so."""
    import matplotlib.pyplot as plt
    xy = np.asarray(xy)
    shown = np.isfinite(xy).all(1)
    pick = lambda v: None if v is None else np.asarray(v)[shown]  # noqa: E731
    n_all = len(xy)
    xy, labels, leiden, nbmix = xy[shown], pick(labels), pick(leiden), pick(nbmix)
    panels = ([(labels, label_title)] if labels is not None else []) + \
        [(leiden, "Leiden (scanpy)"), (nbmix, "NB mixture")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 5.2), sharex=True, sharey=True)
    for ax, (lab, title) in zip(np.atleast_1d(axes), panels):
        if lab is labels:
            lab = pd.Series(lab, dtype=object).fillna("unlabelled").to_numpy()
        _categorical_scatter(ax, xy, lab, title)
    np.atleast_1d(axes)[0].set_ylabel("UMAP 2")
    fig.suptitle(f"{dataset}: UMAP of log1p-normalised counts" + (
        "" if len(xy) == n_all else f" (random subsample of {len(xy):,} of {n_all:,} cells)"), fontsize=11)
    fig.tight_layout()
    return fig


def correlation_heatmap(r, label_names, label_title, dataset):
    """Heatmap of the correlation of one-hot labels (rows) with NB-mixture responsibilities (columns)."""
    import matplotlib.pyplot as plt
    k = r.shape[1]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k + 2.0, 1.2 + 0.45 * len(label_names)))
    im = ax.imshow(r, cmap="coolwarm", vmin=-1, vmax=1, aspect="auto")
    for i in range(r.shape[0]):
        for j in range(k):
            ax.text(j, i, f"{r[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(k), [str(c) for c in range(k)])
    ax.set_yticks(range(len(label_names)), label_names, fontsize=8)
    ax.set_xlabel("NB-mixture component")
    ax.set_ylabel(label_title)
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("Pearson correlation")
    ax.set_title(f"{dataset}: responsibilities vs labels", fontsize=10)
    fig.tight_layout()
    return fig


def poisson_vs_nb(names, nb_ll, pois_ll, label_title, dataset, shown: int | None = None, of: int | None = None):
    """Per gene log-likelihood under a Poisson (point-mass expression) vs NB (Gamma expression) model, per label;
    ``shown`` of ``of`` cells: the title says when the fits saw a random subsample."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    n = len(names)
    ncol = min(4, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 3.0 * nrow + 0.4), squeeze=False)
    for ax, name, nb, po in zip(axes.ravel(), names, nb_ll, pois_ll):
        lo = float(min(nb.min(), po.min()))
        ax.scatter(po, nb, s=3, c="k", alpha=0.3, lw=0, label="gene")
        ax.plot([lo, 0], [lo, 0], c="r", ls=":", lw=1, label="y = x")
        better = float(np.mean(nb > po + 1.0))
        ax.set_title(f"{name}\nNB better by > 1 nat: {100 * better:.0f}% of genes", fontsize=8)
        ax.set_xlabel("Poisson log-lik", fontsize=8)
        ax.set_ylabel("NB log-lik", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(4))   # wide negative tick labels would overlap
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes.ravel()[0].legend(frameon=False, fontsize=7, markerscale=3)
    sample = "" if shown is None or of is None or shown >= of else \
        f"\n(random subsample of {shown:,} of {of:,} cells)"
    fig.suptitle(f"{dataset}: per gene log-likelihood given {label_title}{sample}", fontsize=10)
    fig.tight_layout()
    return fig


def metrics_table_figure(df: pd.DataFrame):
    """Render the accuracy / NMI / ARI table as a figure."""
    import matplotlib.pyplot as plt
    cols = ["dataset", "method", "label_kind", "k", "n_cells", "accuracy_majority", "accuracy_hungarian",
            "nmi", "ari", "log_loss"]
    show = df[cols].copy()
    for c in ["accuracy_majority", "accuracy_hungarian", "nmi", "ari", "log_loss"]:
        show[c] = show[c].map(lambda v: "n/a" if pd.isna(v) else f"{v:.3f}")
    header = ["dataset", "method", "labels", "k", "cells", "acc. (majority)", "acc. (1-to-1)", "NMI", "ARI",
              "log loss"]
    fig, ax = plt.subplots(figsize=(13, 0.5 + 0.32 * (len(show) + 1)))
    ax.axis("off")
    tab = ax.table(cellText=show.to_numpy(), colLabels=header, loc="center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.auto_set_column_width(list(range(len(cols))))
    ax.set_title("NB mixture vs Leiden: agreement with labels (n/a: labels are a reference clustering, "
                 "only NMI/ARI shown; or no cell could be scored)", fontsize=9)
    fig.tight_layout()
    return fig
