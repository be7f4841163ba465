"""The preprocessed ``.h5ad`` contract: how every analysis opens ``results/preprocess/<dataset>.h5ad``.

``layers['counts']`` raw integer counts, ``X`` log-normalised, ``obs['batch']``, ``obs['label']`` when the
data set has labels, gene flags ``var['liger_selected']`` and ``var['highly_variable']``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..core.errors import InputError
from ..core.gene_names import match_genes
from ..core.io import get_matrix, read_h5ad, read_lines, validate_counts
from ..core.options import GENE_SET_KEYWORDS


def load_preprocessed(path, batch: str | Sequence[str] | None = None, genes: str = "all",
                      layer: str | None = "counts", integer: bool = True):
    """Open a preprocessed ``.h5ad`` (see DESIGN: data contracts) and subset it.

    ``batch``: keep cells whose ``obs['batch']`` is this value (or in this list); ``genes``:
    ``all``, ``liger`` (``var['liger_selected']``), ``hvg`` (``var['highly_variable']``), or
    a path to a text file with one gene name per line (matched exactly; `scfactor.core.gene_names.match_genes`
    warns when ignoring case would match more). The chosen ``layer`` becomes ``X`` and
    is validated as counts when ``integer``. Raises `InputError` for an empty batch, a missing
    flag column or a gene list with no overlap.
    """
    adata = read_h5ad(path)
    if batch is not None:
        wanted = [batch] if isinstance(batch, str) else list(batch)
        if "batch" not in adata.obs:
            raise InputError(path, "has no obs['batch'] column")
        known = set(adata.obs["batch"].astype(str))
        missing = [b for b in wanted if b not in known]
        if missing:
            raise InputError(path, f"batch {missing[0]!r} has no cells (batches: {', '.join(sorted(known))})")
        adata = adata[adata.obs["batch"].astype(str).isin(wanted)].copy()
    adata = select_genes(adata, genes, path)
    x = get_matrix(adata, layer, path)
    validate_counts(x, path, what=layer or "X", integer=integer)
    if layer not in (None, "X"):
        adata.X = None  # the stored X goes before the layer is copied: one matrix less at the peak
    adata.X = x.copy() if sp.issparse(x) else np.asarray(x)
    return adata


def select_genes(adata, genes: str, path):
    """Subset ``adata`` to a gene set: ``all``, ``liger``, ``hvg`` or a file of names."""
    if genes in (None, "all"):
        return adata
    if genes in GENE_SET_KEYWORDS:
        col = "liger_selected" if genes == "liger" else "highly_variable"
        if col not in adata.var:
            raise InputError(path, f"has no var[{col!r}] gene flags; run the preprocess step first")
        keep = adata.var[col].to_numpy(bool)
        if not keep.any():
            raise InputError(path, f"no gene is flagged in var[{col!r}]")
        return adata[:, keep].copy()
    names = read_lines(genes)
    match = match_genes(names, adata.var_names, what=f"gene list {genes}", where=str(path))
    if match.n_found == 0:
        hint = f" ({match.n_ignoring_case} match ignoring case)" if match.n_ignoring_case else ""
        raise InputError(genes, f"none of its {len(names)} gene names occurs in {path}{hint}")
    return adata[:, match.found].copy()
