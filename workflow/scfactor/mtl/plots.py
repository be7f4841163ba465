"""Figures of the MTL results: MTL vs lasso / lambda = 0 per gene, and R2 per gene cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import plotting  # noqa: F401  (sets the backend)
from .pipeline import ABLATION, REFERENCE


def _per_gene(r2, model):
    d = r2[r2["model"] == model]
    return d.groupby(["tissue", "gene"], sort=True)[["r2", "lasso_r2"]].mean()


def _scatter(ax, x, y, xlabel, ylabel, title):
    lo = float(np.nanmin([x.min(), y.min(), 0.0])) - 0.05
    hi = float(np.nanmax([x.max(), y.max(), 0.1])) + 0.05
    above = float((y > x).mean()) * 100
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="y = x")
    ax.scatter(x, y, s=14, alpha=0.7, color="tab:blue",
               label=f"genes (n={len(x)}); {above:.0f}% above y = x")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")


def comparison_figure(r2: pd.DataFrame, run: str, reference: str = REFERENCE):
    """Per tissue (columns): test R2 per gene, MTL vs lasso (top) and MTL vs lambda = 0 (bottom)."""
    import matplotlib.pyplot as plt
    tissues = sorted(r2["tissue"].unique())
    has_ab = ABLATION in set(r2["model"]) and reference != ABLATION
    nrow = 2 if has_ab else 1
    fig, axes = plt.subplots(nrow, len(tissues), figsize=(4.2 * len(tissues), 4.0 * nrow), squeeze=False)
    ref = _per_gene(r2, reference)
    ab = _per_gene(r2, ABLATION) if has_ab else None
    for j, t in enumerate(tissues):
        d = ref.loc[t] if t in ref.index.get_level_values(0) else None
        if d is None:
            axes[0, j].set_axis_off()
            continue
        _scatter(axes[0, j], d["lasso_r2"], d["r2"], "lasso test R$^2$", f"MTL ({reference}) test R$^2$",
                 f"{t}: MTL {d['r2'].mean():.3f} vs lasso {d['lasso_r2'].mean():.3f} (mean)")
        if has_ab:
            m = d[["r2"]].join(ab.loc[t][["r2"]], rsuffix="_ab", how="inner")
            _scatter(axes[1, j], m["r2_ab"], m["r2"], "independent tasks ($\\lambda$ = 0) test R$^2$",
                     f"MTL ({reference}) test R$^2$",
                     f"{t}: MTL {m['r2'].mean():.3f} vs $\\lambda$=0 {m['r2_ab'].mean():.3f} (mean)")
    fig.suptitle(f"Trace-norm MTL, test R$^2$ per gene{' - ' + run if run else ''} "
                 "(mean over replicates)", fontsize=12)
    fig.tight_layout()
    return fig


def cluster_figure(r2: pd.DataFrame, run: str, reference: str = REFERENCE):
    """Per tissue: distribution of test R2 per gene cluster, MTL next to the lasso baseline."""
    import matplotlib.pyplot as plt
    tissues = sorted(r2["tissue"].unique())
    fig, axes = plt.subplots(len(tissues), 1, figsize=(max(6, 0.6 * r2["cluster"].nunique() + 3), 3.2 * len(tissues)),
                             squeeze=False)
    d = r2[r2["model"] == reference].groupby(["tissue", "cluster", "gene"], sort=True)[["r2", "lasso_r2"]].mean()
    for i, t in enumerate(tissues):
        ax = axes[i, 0]
        if t not in d.index.get_level_values(0):
            ax.set_axis_off()
            continue
        dt = d.loc[t]
        clusters = sorted(dt.index.get_level_values(0).unique())
        pos = np.arange(len(clusters))
        for off, col, color, label in ((-0.18, "r2", "tab:blue", f"MTL ({reference})"),
                                       (0.18, "lasso_r2", "tab:orange", "lasso")):
            vals = [dt.loc[c][col].dropna().to_numpy() for c in clusters]
            bp = ax.boxplot(vals, positions=pos + off, widths=0.32, patch_artist=True, manage_ticks=False)
            for b in bp["boxes"]:
                b.set_facecolor(color)
                b.set_alpha(0.6)
            ax.plot([], [], color=color, lw=8, alpha=0.6, label=label)
        ax.set_xticks(pos)
        ax.set_xticklabels([f"c{c:02d}" for c in clusters])
        ax.set_xlabel("gene cluster")
        ax.set_ylabel("test R$^2$")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"{t}: test R$^2$ per gene by cluster", fontsize=10)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"R$^2$ distribution per gene cluster{' - ' + run if run else ''}", fontsize=12)
    fig.tight_layout()
    return fig
