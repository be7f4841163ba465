"""Densify's input and output through the file, block by block (issue 19: atlas scale).

`read_counts` reads one batch's counts x the modelled genes from a preprocessed ``.h5ad`` a block of
input cells at a time (`scfactor.preprocess.counts.open_h5ad`: h5py slices of the CSR arrays,
`scfactor.preprocess.counts.read_rows`, as the preprocess step and the multilayer NMF stream), checks
every block as `scfactor.core.io.validate_counts` would the whole matrix (same one-line errors) and keeps
only the sparse (CSR) counts, stacked as they arrive (`scfactor.core.csr_stack.stack_rows`): the matrix
is never dense in memory and the file's other matrix (``X``, log-normalised) is never read. Files that
cannot be streamed are read whole (`load_preprocessed`).

`write_densified` writes the densify output with its dense ``layers['neumf']`` filled one block of
predicted cells at a time (an h5py dataset, gzip, chunked by block), so the dense prediction is never
in memory as a whole; ``uns`` is written last, after the blocks, so it can hold the held-out metrics
computed from them. The file reads back as the ``AnnData.write_h5ad`` of the same data would.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import scipy.sparse as sp

from ..core import io
from ..core.csr_stack import stack_rows
from ..preprocess import contract
from ..preprocess import counts as counts_io

#: gzip, as `scfactor.core.io.write_h5ad`
DATASET_KWARGS = {"compression": "gzip"}


def read_counts(path, batch, genes: str, layer: str, integer: bool):
    """AnnData of the cells of ``batch`` (None: all) x the ``genes`` set, ``X`` = CSR counts of ``layer``
    (float32), read and validated block by block; `InputError` as `contract.load_preprocessed`."""
    opened = counts_io.open_h5ad(io.require_file(path), layer)
    if opened is None:
        adata = contract.load_preprocessed(path, batch=batch, genes=genes, layer=layer, integer=integer)
        adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
        return adata
    meta, counts = opened
    if batch is not None:
        meta = meta[contract.batch_mask(meta, batch, path)].copy()
    meta = contract.select_genes(meta, genes, path)
    what = layer or "X"
    if meta.n_obs == 0 or meta.n_vars == 0:
        raise io.InputError(path, f"{what} is empty ({meta.n_obs} cells x {meta.n_vars} genes)")
    io.check_counts_dtype(counts.dtype, path, what)
    rows, cols = counts.positions(meta)
    bad = np.zeros(3, np.int64)

    def checked():
        for _, block in counts.blocks(rows, cols, dtype=None):
            bad[:] += io.count_bad_values(io.matrix_values(block), integer)
            yield block
    x = stack_rows(checked(), meta.n_vars, np.float32)
    io.raise_bad_counts(bad, path, what)
    meta.X = x  # set only once every block passed the checks
    return meta


def write_densified(path, meta, blocks: Iterable[tuple[int, int, np.ndarray]], uns: Callable[[], dict],
                    layer: str = "neumf") -> None:
    """Write ``meta`` (an AnnData without the dense layer) to ``path`` atomically, its dense ``layers[layer]``
    filled from ``blocks`` (``(start, stop, float32 cells x genes)``, consecutive, covering every cell), then
    ``uns = uns()`` (called after the last block).

    ``meta``'s ``X`` and ``layers`` are removed from it once written (their memory is freed unless the caller
    holds them elsewhere), so that the blocks and ``uns()`` run without the count matrices in memory."""
    import h5py
    from anndata.io import write_elem

    n, m = meta.shape
    meta.strings_to_categoricals()  # as AnnData.write_h5ad does
    with io.atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        write_elem(f, "X", meta.X, dataset_kwargs=DATASET_KWARGS)
        write_elem(f, "layers", dict(meta.layers), dataset_kwargs=DATASET_KWARGS)
        meta.X = None
        for key in list(meta.layers):
            del meta.layers[key]
        dense = None
        done = 0
        for start, stop, values in blocks:
            if dense is None:
                dense = f["layers"].create_dataset(layer, shape=(n, m), dtype=np.float32,
                                                   chunks=(max(1, min(stop - start, n)), m), **DATASET_KWARGS)
                dense.attrs["encoding-type"] = "array"
                dense.attrs["encoding-version"] = "0.2.0"
            if start != done:
                raise ValueError(f"blocks must be consecutive: got cells {start}:{stop} after {done}")
            dense[start:stop] = values
            done = stop
        if done != n:
            raise ValueError(f"the blocks covered {done} of {n} cells")
        for key in ("obs", "var"):
            write_elem(f, key, getattr(meta, key), dataset_kwargs=DATASET_KWARGS)
        for key in ("obsm", "varm", "obsp", "varp"):
            write_elem(f, key, dict(getattr(meta, key)), dataset_kwargs=DATASET_KWARGS)
        write_elem(f, "uns", {**dict(meta.uns), **uns()}, dataset_kwargs=DATASET_KWARGS)
