"""Figure of a NeuMF densification: held-out predicted vs observed counts, SVD baseline, loss trace."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import heldout
from .core.errors import InputError


def heldout_arrays(adata, path):
    """(held-out entries, training matrix, NeuMF predictions at them) from a densify output .h5ad."""
    for key in ("neumf",):
        if key not in adata.layers:
            raise InputError(path, f"has no layers[{key!r}]; is it an output of densify.py?")
    if "counts" not in adata.layers or "neumf" not in adata.uns:
        raise InputError(path, "lacks layers['counts'] or uns['neumf']; is it an output of densify.py?")
    u = adata.uns["neumf"]
    rows = np.asarray(u["heldout_rows"], dtype=np.int64)
    cols = np.asarray(u["heldout_cols"], dtype=np.int64)
    if rows.size == 0:
        raise InputError(path, "has no held-out entries (densify ran with --heldout-frac 0)")
    counts = sp.csr_matrix(adata.layers["counts"])
    obs = np.asarray(counts[rows, cols], dtype=np.float64).ravel()
    held = heldout.HeldOut(rows, cols, obs)
    mask = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=counts.shape)
    train = counts - counts.multiply(mask)
    train.eliminate_zeros()
    pred = np.asarray(adata.layers["neumf"])[rows, cols]
    return held, sp.csr_matrix(train), pred


def heldout_figure(adata, path, title: str):
    """A 3-panel figure: NeuMF and SVD predicted vs observed (log1p, hidden entries), loss per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    held, train, pred = heldout_arrays(adata, path)
    params = adata.uns["neumf"]["params"]
    rank = int(params.get("svd_rank", 20))
    svd = heldout.svd_baseline(train, held, rank, int(params.get("seed", 0)))
    name = f"NeuMF ({params.get('arch', 'neumf')}, {params.get('loss', '')} loss)"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    lo = np.log1p(held.values)
    top = float(max(lo.max(), np.log1p(np.clip(pred, 0, None)).max(), np.log1p(svd).max())) * 1.02
    for ax, (label, p) in zip(axes[:2], ((name, pred), (f"truncated SVD, rank {rank}", svd))):
        m = heldout.heldout_metrics(p, held.values)
        hb = ax.hexbin(lo, np.log1p(np.clip(p, 0, None)), gridsize=45, bins="log", cmap="viridis",
                       extent=(0, top, 0, top), mincnt=1)
        ax.plot([0, top], [0, top], color="crimson", lw=1, ls="--", label="y = x")
        ax.set_xlabel("observed count, log1p (hidden entries)")
        ax.set_ylabel("predicted count, log1p")
        ax.set_title(f"{label}\nPearson {m['pearson_log1p']:.3f}, Spearman {m['spearman_log1p']:.3f}, "
                     f"RMSE {m['rmse']:.2f}", fontsize=10)
        ax.legend(loc="upper left", fontsize=9)
        fig.colorbar(hb, ax=ax, label="hidden entries per bin")
    ax = axes[2]
    for phase, t in adata.uns["neumf"]["trace"].items():
        ax.plot(np.asarray(t["epoch"]), np.asarray(t["loss"]), marker="o", label=phase)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss per entry")
    ax.set_title("training loss")
    ax.legend(title="phase", fontsize=9)
    fig.suptitle(f"{title}: {held.values.size} hidden nonzero counts", fontsize=12)
    fig.tight_layout()
    return fig
