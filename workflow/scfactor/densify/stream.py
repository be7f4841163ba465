"""Densify's output through the file, block by block (issue 19: atlas scale). Its input is read block by block
too, by `scfactor.preprocess.contract.stream_counts` (as every analysis reads its counts), and kept on disk
(`scfactor.densify.spill`).

`write_densified` writes the densify output with its count matrices appended one block of cells at a time
(``X`` float32 and ``layers['counts']``, anndata's sparse-dataset append) and its dense ``layers['neumf']``
filled one block of predicted cells at a time (an h5py dataset, gzip, chunked by block), so neither the counts
nor the dense prediction is ever in memory as a whole; ``uns`` is written last, after the blocks, so it can hold
the held-out metrics computed from them. The file reads back as the ``AnnData.write_h5ad`` of the same data would.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import scipy.sparse as sp

from ..core import io

#: gzip, as `scfactor.core.io.write_h5ad`
DATASET_KWARGS = {"compression": "gzip"}


def write_densified(path, meta, blocks: Iterable[tuple[int, int, np.ndarray]], uns: Callable[[], dict],
                    counts: Iterable[sp.csr_matrix], integer_counts: bool, layer: str = "neumf") -> None:
    """Write ``meta`` (an AnnData of obs / var, without matrices) to ``path`` atomically with ``X`` and
    ``layers['counts']`` from ``counts`` (consecutive CSR blocks of rows covering every cell; ``X`` float32,
    ``layers['counts']`` int32 with ``integer_counts``, else the same float32), its dense ``layers[layer]`` filled
    from ``blocks`` (``(start, stop, float32 cells x genes)``, consecutive, covering every cell), then
    ``uns = uns()`` (called after the last block)."""
    import h5py
    from anndata.io import write_elem

    n, m = meta.shape
    meta.strings_to_categoricals()  # as AnnData.write_h5ad does
    with io.atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        _write_counts(f, counts, n, m, integer_counts)
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


def _write_counts(f, counts: Iterable[sp.csr_matrix], n: int, m: int, integer: bool) -> None:
    """``X`` (float32) and ``layers['counts']`` of the output from consecutive CSR blocks: the first block
    written, the rest appended (`anndata.io.sparse_dataset`), so one block is in memory at a time."""
    from anndata.io import sparse_dataset, write_elem
    rows = 0
    for block in counts:
        block = sp.csr_matrix(block, dtype=np.float32)
        if block.shape[1] != m:
            raise ValueError(f"a count block has {block.shape[1]} genes, not {m}")
        as_counts = (sp.csr_matrix((block.data.astype(np.int32), block.indices, block.indptr), shape=block.shape)
                     if integer else block)
        if rows == 0 and "X" not in f:
            write_elem(f, "X", block, dataset_kwargs=DATASET_KWARGS)
            write_elem(f, "layers", {"counts": as_counts}, dataset_kwargs=DATASET_KWARGS)
        else:
            sparse_dataset(f["X"]).append(block)
            sparse_dataset(f["layers/counts"]).append(as_counts)
        rows += block.shape[0]
    if rows != n:
        raise ValueError(f"the count blocks covered {rows} of {n} cells")
