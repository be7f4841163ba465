"""Write the preprocessed ``.h5ad`` block by block: ``layers['counts']`` and ``X`` are appended one block of
cells at a time (`scfactor.preprocess.counts.Counts`), everything else is written whole; the file is the one
``AnnData.write_h5ad(compression='gzip')`` writes for the same data."""

from __future__ import annotations


from ..core.io import atomic_output

#: gzip, as `scfactor.core.io.write_h5ad`
DATASET_KWARGS = {"compression": "gzip"}


def write_preprocessed(pre, path) -> None:
    """Write the `scfactor.preprocess.pipeline.Preprocessed` ``pre`` to ``path`` atomically."""
    import h5py
    from anndata.io import sparse_dataset, write_elem

    from .pipeline import normalise_counts
    adata = pre.adata
    rows, cols = pre.counts.positions(adata)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        write_elem(f, "layers", dict(adata.layers), dataset_kwargs=DATASET_KWARGS)
        stores = None
        for _, x in pre.counts.blocks(rows, cols):
            parts = {"X": normalise_counts(x, pre.target_sum), "layers/counts": x}
            if stores is None:
                for key, part in parts.items():
                    write_elem(f, key, part, dataset_kwargs=DATASET_KWARGS)
                stores = {key: sparse_dataset(f[key]) for key in parts}
            else:
                for key, part in parts.items():
                    stores[key].append(part)
        for key in ("obs", "var"):
            write_elem(f, key, getattr(adata, key), dataset_kwargs=DATASET_KWARGS)
        for key in ("obsm", "varm", "obsp", "varp", "uns"):
            write_elem(f, key, dict(getattr(adata, key)), dataset_kwargs=DATASET_KWARGS)
        if adata.raw is not None:
            write_elem(f, "raw", adata.raw, dataset_kwargs=DATASET_KWARGS)
