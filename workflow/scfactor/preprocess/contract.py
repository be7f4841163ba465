"""The preprocessed ``.h5ad`` contract: how every analysis opens ``results/preprocess/<dataset>.h5ad``.

``layers['counts']`` raw integer counts, ``X`` log-normalised, ``obs['batch']``, ``obs['label']`` when the
data set has labels, gene flags ``var['liger_selected']`` and ``var['highly_variable']``.

Every analysis reads it with `load_counts`: only the chosen count matrix, a block of cells at a time (issue 19: a
million cells). `load_preprocessed` reads the file whole (every matrix, then a copy of the chosen one): `load_counts`
falls back to it for files that cannot be streamed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..core.csr_stack import stack_rows
from ..core.errors import InputError
from ..core.gene_names import match_genes
from ..core.io import get_matrix, read_h5ad, read_lines, require_file, validate_counts
from ..core.options import GENE_SET_KEYWORDS
from . import counts as counts_io


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
        adata = adata[batch_mask(adata, batch, path)].copy()
    adata = select_genes(adata, genes, path)
    x = get_matrix(adata, layer, path)
    validate_counts(x, path, what=layer or "X", integer=integer)
    if layer not in (None, "X"):
        adata.X = None  # the stored X goes before the layer is copied: one matrix less at the peak
    adata.X = x.copy() if sp.issparse(x) else np.asarray(x)
    return adata


def load_counts(path, batch: str | Sequence[str] | None = None, genes: str = "all", layer: str | None = "counts",
                integer: bool = True, dtype=None):
    """The cells of ``batch`` x the ``genes`` set of a preprocessed ``.h5ad`` (as `load_preprocessed`), ``X`` the
    CSR counts of ``layer`` (values cast to ``dtype``; None keeps the file's), and no ``layers``.

    Only that matrix is read, a block of cells at a time (`stream_counts`); the blocks are stacked as they arrive
    (`scfactor.core.csr_stack.stack_rows`), so memory holds the result and one block, never the file's other
    matrices (other layers, ``raw``: not in the result) or a dense copy.
    """
    meta, blocks, file_dtype = stream_counts(path, batch, genes, layer, integer)
    meta.X = stack_rows(blocks, meta.n_vars, file_dtype if dtype is None else dtype)  # set only if every block passed
    return meta


def stream_counts(path, batch: str | Sequence[str] | None = None, genes: str = "all", layer: str | None = "counts",
                  integer: bool = True):
    """``(meta, blocks, dtype)``: the cells of ``batch`` x the ``genes`` set of a preprocessed ``.h5ad`` without
    their matrix (``meta``, as `load_counts` returns it with ``X`` None), an iterator of their CSR counts of
    ``layer`` a block of cells at a time, and the file's value type.

    The blocks are h5py slices of the file's CSR arrays (`scfactor.preprocess.counts.open_h5ad`), each checked as
    `scfactor.core.io.validate_counts` checks the whole (the same one-line `InputError`, raised after the last
    block: a caller building a result from them keeps nothing partial). A file that cannot be streamed (a CSC
    matrix, an unknown encoding) is read whole by `load_preprocessed` and given as one block.
    """
    opened = counts_io.open_h5ad(require_file(path), layer, carry_over=False)
    if opened is None:
        adata = load_preprocessed(path, batch=batch, genes=genes, layer=layer, integer=integer)
        x = sp.csr_matrix(adata.X)
        adata.X = None
        for key in list(adata.layers):
            del adata.layers[key]
        adata.raw = None
        return adata, iter([x]), x.dtype
    meta, counts = opened
    if batch is not None:
        meta = meta[batch_mask(meta, batch, path)].copy()
    meta = select_genes(meta, genes, path)
    rows, cols = counts.positions(meta)
    return meta, counts_io.checked_blocks(counts, rows, cols, path, layer or "X", integer), counts.dtype


def batch_mask(adata, batch: str | Sequence[str], path) -> np.ndarray:
    """Boolean mask of the cells whose ``obs['batch']`` is ``batch`` (or in this list); `InputError` for a
    missing column or a batch without cells."""
    wanted = [batch] if isinstance(batch, str) else list(batch)
    if "batch" not in adata.obs:
        raise InputError(path, "has no obs['batch'] column")
    known = set(adata.obs["batch"].astype(str))
    missing = [b for b in wanted if b not in known]
    if missing:
        raise InputError(path, f"batch {missing[0]!r} has no cells (batches: {', '.join(sorted(known))})")
    return adata.obs["batch"].astype(str).isin(wanted).to_numpy()


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


def gene_mask(var, genes: str, path) -> np.ndarray:
    """Boolean mask over a ``var`` table of the gene set ``genes`` (`select_genes` without the matrix)."""
    import anndata as ad
    keep = select_genes(ad.AnnData(var=var.copy()), genes, path).var_names
    return np.asarray(var.index.isin(keep))


def same_matrix(a, b) -> bool:
    """Same CSR matrix to the bit: value dtype, values, column indices and row pointers."""
    return (a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.data, b.data)
            and np.array_equal(a.indices, b.indices) and np.array_equal(a.indptr, b.indptr))


def same_value(a, b) -> bool:
    """Nested equality of ``uns`` / ``obsm`` values (arrays compared exactly)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


def compare_preprocessed(a, b, ignore=("input", "dataset")) -> dict[str, bool]:
    """``{element: same}`` for two preprocessed AnnData: ``X`` and ``layers['counts']`` bit for bit, ``obs``,
    ``var``, ``obsm``, ``varm`` and ``uns`` (less the ``ignore`` keys of ``uns['preprocess']``, which name the
    input)."""
    ua, ub = ({**u, "preprocess": {k: v for k, v in u["preprocess"].items() if k not in ignore}}
              for u in (dict(a.uns), dict(b.uns)))
    return {"X": same_matrix(a.X, b.X), "layers['counts']": same_matrix(a.layers["counts"], b.layers["counts"]),
            "layers": set(a.layers) == set(b.layers), "obs": a.obs.equals(b.obs), "var": a.var.equals(b.var),
            "obsm": same_value(dict(a.obsm), dict(b.obsm)), "varm": same_value(dict(a.varm), dict(b.varm)),
            "uns": same_value(ua, ub)}
