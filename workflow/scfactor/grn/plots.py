"""Figures of the GRN analysis (the cell-state GRN notebook): strongest signed edges, residuals, sign agreement.

Each function takes the arrays of a ``weights.npz`` (`scfactor.grn.pipeline.load_weights`) and returns a
matplotlib figure; the CLI saves it with `scfactor.core.plotting.save_figure`.
"""

from __future__ import annotations

import numpy as np

from ..core import plotting  # noqa: F401  (sets the backend)

MODEL_NAMES = {"linear": "masked linear (L1 + L2)", "mlp": "masked MLP", "mean_baseline": "mean baseline"}


def _plt():
    import matplotlib.pyplot as plt
    return plt


def top_edges(weight: np.ndarray, mask: np.ndarray, k: int):
    """Row / column indices of the ``k`` largest |weight| non-zero edges (ties broken by position)."""
    r, c = np.nonzero(mask & (weight != 0))
    order = np.lexsort((c, r, -np.abs(weight[r, c])))[:k]
    return r[order], c[order]


def edge_heatmap(d: dict, k: int):
    """Heatmap of the ``k`` strongest signed edges: TFs x targets, prior sign written in each edge."""
    plt = _plt()
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Patch
    w, mask, ps = d["weight"], d["mask"], d["prior_sign"]
    r, c = top_edges(w, mask, k)
    name = str(d["transition"])
    if len(r) == 0:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "no non-zero edge (penalty too strong?)", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title(f"{name}: strongest signed edges")
        return fig
    rows = np.unique(r)
    cols = np.unique(c)
    sub = np.where(mask[np.ix_(rows, cols)], w[np.ix_(rows, cols)], np.nan)
    # order rows / columns by total |weight| so the strongest regulators come first
    rows_o = np.argsort(-np.nansum(np.abs(sub), axis=1), kind="stable")
    cols_o = np.argsort(-np.nansum(np.abs(sub), axis=0), kind="stable")
    sub = sub[rows_o][:, cols_o]
    rows, cols = rows[rows_o], cols[cols_o]
    vmax = float(np.nanmax(np.abs(sub))) or 1.0
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(cols) + 3), max(3.0, 0.32 * len(rows) + 2)))
    ax.set_facecolor("#d9d9d9")
    im = ax.imshow(np.ma.masked_invalid(sub), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -vmax, vmax), aspect="auto")
    top = set(zip(r.tolist(), c.tolist()))
    for i, ri in enumerate(rows):
        for j, cj in enumerate(cols):
            if (ri, cj) in top:
                s = ps[ri, cj]
                ax.text(j, i, "+" if s > 0 else ("\u2212" if s < 0 else "?"), ha="center", va="center",
                        fontsize=8, color="black")
    ax.set_xticks(range(len(cols)), d["targets"][cols], rotation=90, fontsize=8)
    ax.set_yticks(range(len(rows)), d["tfs"][rows], fontsize=8)
    ax.set_xlabel("target gene (state B)")
    ax.set_ylabel("TF (state A)")
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("weight (log expr. per SD of TF)")
    ax.legend(handles=[Patch(facecolor="#d9d9d9", label="no prior edge"),
                       Patch(facecolor="white", edgecolor="grey", label="prior edge (+/\u2212/?: prior sign of a top edge)")],
              loc="upper left", bbox_to_anchor=(0.0, -0.02 - 0.012 * max(len(s) for s in d["targets"][cols])),
              fontsize=8, ncol=2, frameon=False)
    ax.set_title(f"{name}: {len(r)} strongest signed edges (masked linear)")
    fig.tight_layout()
    return fig


def residual_plot(d: dict):
    """Residual vs predicted on the held-out pairs, one panel per model, with the median R2."""
    plt = _plt()
    models = [m for m in ("linear", "mlp", "mean_baseline") if f"pred_{m}" in d]
    y = d["y_test"].astype(np.float64)
    fig, axes = plt.subplots(1, len(models), figsize=(4.4 * len(models), 4.2), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, m in zip(axes[0], models):
        p = d[f"pred_{m}"].astype(np.float64)
        res = (y - p).ravel()
        hb = ax.hexbin(p.ravel(), res, gridsize=40, bins="log", cmap="viridis", mincnt=1)
        ax.axhline(0, color="red", lw=1, label="zero residual")
        r2 = d[f"r2_{m}"]
        ax.set_title(f"{MODEL_NAMES[m]}\nmedian held-out R2 = {np.nanmedian(r2):.3f}", fontsize=10)
        ax.set_xlabel("predicted log expression (state B)")
        ax.legend(loc="upper right", fontsize=8)
    axes[0][0].set_ylabel("residual (observed - predicted)")
    fig.colorbar(hb, ax=axes[0].tolist(), shrink=0.8, label="pair x target values per bin (log scale)")
    fig.suptitle(f"{d['transition']}: residuals on held-out cell pairs ({y.shape[0]} pairs x {y.shape[1]} targets)")
    return fig


def sign_plot(d: dict, steps=(10, 25, 50, 100, 250)):
    """Learned vs prior signs: a 2x2 count table and the agreement of the top-k edges against chance."""
    plt = _plt()
    w, mask, ps = d["weight"], d["mask"], d["prior_sign"]
    sel = mask & (w != 0) & (ps != 0)
    ls, pr = np.sign(w[sel]), ps[sel]
    tab = np.array([[np.sum((ls == a) & (pr == b)) for b in (1, -1)] for a in (1, -1)])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 1.4]})
    a1.imshow(tab, cmap="Blues")
    for i in range(2):
        for j in range(2):
            a1.text(j, i, str(tab[i, j]), ha="center", va="center", fontsize=12,
                    color="white" if tab[i, j] > tab.max() / 2 else "black")
    a1.set_xticks([0, 1], ["activation (+)", "repression (\u2212)"])
    a1.set_yticks([0, 1], ["positive", "negative"])
    a1.set_xlabel("prior sign (DoRothEA mor)")
    a1.set_ylabel("learned weight sign")
    a1.set_title(f"non-zero signed edges: {int(sel.sum())}")
    r, c = top_edges(np.where(ps != 0, w, 0.0), mask, int(sel.sum()))
    agree = np.sign(w[r, c]) == ps[r, c]
    ks = [k for k in steps if k < len(agree)] + [len(agree)]
    fr = [agree[:k].mean() if k else np.nan for k in ks]
    pw = (ls > 0).mean() if len(ls) else np.nan
    pp = (pr > 0).mean() if len(pr) else np.nan
    chance = pw * pp + (1 - pw) * (1 - pp)
    a2.plot(range(len(ks)), fr, "o-", label="agreement of the top-k edges")
    a2.axhline(chance, color="grey", ls="--", label=f"chance from sign frequencies ({chance:.2f})")
    a2.set_xticks(range(len(ks)), [f"top {k}" if k != len(agree) else f"all {k}" for k in ks])
    a2.set_ylim(0, 1)
    a2.set_ylabel("fraction with learned sign = prior sign")
    a2.set_xlabel("edges ranked by |weight|")
    a2.legend(loc="lower right", fontsize=8)
    a2.set_title("sign agreement with the prior")
    fig.suptitle(f"{d['transition']}: learned signs vs prior signs")
    fig.tight_layout()
    return fig
