"""Figures: the matplotlib backend is set once here, and one function saves a figure as PNG + PDF.

The figure contract of every rule: one output argument ``<name>.png``; `save_figure` writes it and its
sibling ``<name>.pdf`` atomically (both or neither).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .io import atomic_output  # noqa: E402

DPI = 150
#: no creation date in the files, so that a rerun writes the same bytes
_NO_DATE = {"pdf": {"CreationDate": None}}


def figure_paths(png) -> tuple[Path, Path]:
    """``(<name>.png, <name>.pdf)`` for the figure output ``png`` (which must end in .png)."""
    png = Path(png)
    if png.suffix.lower() != ".png":
        raise ValueError(f"{png}: a figure output must end in .png (its .pdf is written beside it)")
    return png, png.with_suffix(".pdf")


def save_figure(fig, png, dpi: int = DPI) -> None:
    """Save ``fig`` (a matplotlib Figure, or an object with ``.figure`` such as a seaborn grid) as PNG + PDF.

    Both files appear together or not at all, and a rerun writes the same bytes (no creation date in the
    PDF); the figure is closed afterwards.
    """
    fig = getattr(fig, "figure", fig) if not isinstance(fig, matplotlib.figure.Figure) else fig
    png, pdf = figure_paths(png)
    try:
        with contextlib.ExitStack() as stack:
            tmps = [(stack.enter_context(atomic_output(p)), p) for p in (pdf, png)]
            for tmp, p in tmps:
                fmt = p.suffix.lstrip(".")
                fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt, metadata=_NO_DATE.get(fmt))
    except BaseException:
        for p in (png, pdf):  # the first rename may have happened before the second failed
            p.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
