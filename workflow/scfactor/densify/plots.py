"""Figure of a NeuMF densification: held-out predicted vs observed counts, SVD baseline, loss trace."""

from __future__ import annotations

import numpy as np

from ..core import plotting  # noqa: F401  (sets the backend)
from . import heldout


def heldout_figure(held: heldout.HeldOut, predictions: dict, trace: dict, title: str):
    """A 3-panel figure: two methods' predictions vs observed counts (log1p, hidden entries), loss per epoch.

    ``predictions``: panel label -> predictions at the held-out entries (NeuMF, then the SVD baseline);
    ``trace``: phase -> {"epoch": [...], "loss": [...]} (``uns['neumf']['trace']``). Above
    `scfactor.densify.heldout.SCORED_MAX` hidden entries every k-th is shown and scored (as in the held-out table),
    and the title says so.
    """
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    step = heldout.scored_step(len(held))
    obs = held.values[::step]
    predictions = {label: np.asarray(p)[::step] for label, p in predictions.items()}
    lo = np.log1p(obs)
    top = float(max(lo.max(), *(np.log1p(np.clip(p, 0, None)).max() for p in predictions.values()))) * 1.02
    for ax, (label, p) in zip(axes[:2], predictions.items()):
        m = heldout.heldout_metrics(p, obs)
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
    for phase, t in trace.items():
        ax.plot(np.asarray(t["epoch"]), np.asarray(t["loss"]), marker="o", label=phase)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss per entry")
    ax.set_title("training loss")
    ax.legend(title="phase", fontsize=9)
    shown = f" (every {step}th shown and scored: {obs.size})" if step > 1 else ""
    fig.suptitle(f"{title}: {held.values.size} hidden nonzero counts{shown}", fontsize=12)
    fig.tight_layout()
    return fig
