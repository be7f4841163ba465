"""Where an ``.h5ad`` keeps its counts when the matrix asked for holds other values.

A file from a scanpy or Seurat workflow often has log-normalised values in ``X`` and the raw counts in a layer
(``layers['counts']``) or in ``raw``. Told that ``X`` holds non-integer values, the user needs to know which
matrix to name instead: `suggest_count_matrices` adds that to the error.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..core.errors import InputError

#: stored values read from each candidate matrix to judge whether it holds counts
SAMPLE_VALUES = 1_000_000


def _holds_counts(node) -> bool:
    """Whether the first `SAMPLE_VALUES` stored values of an h5py matrix node (CSR / CSC group or dense dataset)
    are finite non-negative integers (and not all zero)."""
    import h5py
    data = node["data"] if isinstance(node, h5py.Group) else node
    if data.dtype.kind not in "biuf":
        return False
    v = np.asarray(data[:SAMPLE_VALUES] if data.ndim == 1 else data[: max(1, SAMPLE_VALUES // data.shape[1])])
    v = v.ravel()
    return v.size > 0 and bool(v.any()) and bool(np.all(np.isfinite(v) & (v >= 0) & (v == np.round(v))))


def count_matrices(path, layer) -> list[str]:
    """The matrices of the ``.h5ad`` at ``path`` other than ``layer`` (None / ``X``: ``X``) that hold counts:
    ``layers['<name>']``, ``raw.X``, ``X``; empty when the file cannot be read."""
    import h5py
    current = "X" if layer in (None, "X") else f"layers/{layer}"
    try:
        with h5py.File(path, "r") as f:
            names = ["X"] + [f"layers/{k}" for k in f.get("layers", {})] + (["raw/X"] if "raw/X" in f else [])
            return [n for n in names if n != current and n in f and _holds_counts(f[n])]
    except (OSError, KeyError, ValueError, TypeError):
        return []


def hint(found: list[str]) -> str:
    """What to set for the first of `count_matrices` (a layer, ``X`` or ``raw``), as the end of an error line."""
    first = found[0]
    if first.startswith("layers/"):
        name = first.split("/", 1)[1]
        return f"; layers[{name!r}] holds counts: set layer: {name}"
    if first == "X":
        return "; X holds counts: set layer: X"
    return ("; raw.X holds counts: store them as a layer (adata.layers['counts'] = adata.raw[:, adata.var_names].X) "
            "and set layer: counts")


@contextlib.contextmanager
def suggest_count_matrices(path, layer):
    """Inside the block, an `InputError` saying that the ``.h5ad`` at ``path`` has non-integer or negative values
    in ``layer`` is raised again with the matrix of that file that holds counts (`count_matrices`, `hint`)."""
    try:
        yield
    except InputError as exc:
        wrong_values = "non-integer" in exc.problem or "negative" in exc.problem
        found = count_matrices(path, layer) if wrong_values and str(path).endswith(".h5ad") else []
        if not found:
            raise
        raise InputError(exc.path, exc.problem + hint(found)) from None
