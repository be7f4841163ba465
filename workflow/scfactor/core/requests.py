"""What a job asks the batch scheduler for, for steps whose memory or time grows with their cells.

The rules' ``mem_mb`` / ``runtime`` of such steps (the k-NN graph steps, the NB mixture, the multilayer NMF)
are a base plus a measured slope per 1000 cells of the input ``.h5ad``, times the attempt (a retry after a
memory or time failure asks for more). The slopes come from the scale benchmark (``benchmarks/scale/``).
"""

from __future__ import annotations

import os


def input_cells(paths) -> int | None:
    """Cells of the ``.h5ad`` files ``paths`` (one path or several) summed, read from their ``obs`` alone; None
    when any of them is not on this file system yet (a job not yet ready, or inputs kept in object storage)."""
    from .io import h5ad_n_obs
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    total = 0
    for p in paths:
        n = h5ad_n_obs(p) if os.path.isfile(p) else None
        if n is None:
            return None
        total += n
    return total


def scaled_request(base: float, per_1k_cells: float, paths, attempt: int = 1) -> int:
    """``(base + per_1k_cells x cells / 1000) x attempt``, rounded, with the cells of the input ``paths``
    (`input_cells`); ``base x attempt`` while they are unknown.

    Snakemake evaluates a rule's resources when the job is about to run or be submitted, once its inputs
    exist, so the request follows the data; a dry run before the inputs are made shows the base."""
    cells = input_cells(paths)
    extra = 0.0 if cells is None else per_1k_cells * cells / 1000.0
    return int(round((base + extra) * attempt))
