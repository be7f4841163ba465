"""Densify's output through the file, block by block (issue 19: atlas scale). Its input is read block by block
too, by `scfactor.preprocess.contract.load_counts` (as every analysis reads its counts).

`write_densified` writes the densify output with its dense ``layers['neumf']`` filled one block of
predicted cells at a time (an h5py dataset, gzip, chunked by block), so the dense prediction is never
in memory as a whole; ``uns`` is written last, after the blocks, so it can hold the held-out metrics
computed from them. The file reads back as the ``AnnData.write_h5ad`` of the same data would.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from ..core import io

#: gzip, as `scfactor.core.io.write_h5ad`
DATASET_KWARGS = {"compression": "gzip"}


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
