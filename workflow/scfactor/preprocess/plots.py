"""The QC figure of a data set: counts, genes and mitochondrial % per batch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import plotting  # noqa: F401  (sets the backend)


def qc_figure(metrics: pd.DataFrame, batches: pd.Series, kept: np.ndarray, title: str):
    """Violin-style panels of counts, genes and mitochondrial % per batch (kept cells)."""
    import matplotlib.pyplot as plt
    df = metrics.assign(batch=np.asarray(batches).astype(str))[kept]
    order = sorted(df["batch"].unique())
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    panels = [("n_counts", "UMI counts per cell", True), ("n_genes", "genes detected per cell", True),
              ("pct_mito", "mitochondrial counts (%)", False)]
    for ax, (col, label, log) in zip(axes, panels):
        data = [df.loc[df["batch"] == b, col].to_numpy(float) for b in order]
        data = [np.log10(np.maximum(d, 1)) if log else d for d in data]
        nonempty = [d if len(d) else np.zeros(1) for d in data]
        ax.violinplot(nonempty, showmedians=True)
        ax.set_xticks(range(1, len(order) + 1), [f"{b}\n(n={len(d)})" for b, d in zip(order, data)])
        ax.set_ylabel(f"log10 {label}" if log else label)
        ax.set_xlabel("batch")
        ax.set_title(label)
        if col == "pct_mito" and not (df[col] > 0).any():
            ax.text(0.5, 0.8, "no counts on genes matching\nthe mitochondrial pattern",
                    transform=ax.transAxes, ha="center", va="center", color="0.3")
    fig.suptitle(f"{title}: QC of kept cells ({len(df)} cells)")
    fig.tight_layout()
    return fig
