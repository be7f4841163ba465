"""Rows of a preprocessed ``.h5ad`` read from the file in row ranges, for the minibatch fit (never the whole matrix).

`CountRows` opens the file once (h5py), reads ``obs`` / ``var`` and the simulation truth when present, and
returns the selected genes of any row range (`scfactor.preprocess.counts.read_rows`, the reader the preprocess
and densify steps stream with) as a dense float32 array, checked for NaN / negative values.
"""

from __future__ import annotations

import numpy as np

from ..core import io
from ..core.errors import InputError
from ..preprocess import contract
from ..preprocess.counts import read_rows


def n_cells(path) -> int | None:
    """Cells of an ``.h5ad`` from its ``obs`` index alone; None when the file cannot be read that way (the full
    loader then reports the problem)."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            obs = f["obs"]
            return int(obs[obs.attrs["_index"]].shape[0])
    except Exception:  # noqa: BLE001 - any unreadable file goes to the full loader, which names the problem
        return None


class CountRows:
    """Row ranges of layer ``layer`` (genes ``genes``) of a backed ``.h5ad``; `read` is the minibatch fit's source."""

    def __init__(self, path, layer: str, genes: str):
        import anndata as ad
        import h5py
        self.path, self.what = str(io.require_file(path)), layer or "X"
        try:
            self.file = h5py.File(self.path, "r")
            self.obs = ad.io.read_elem(self.file["obs"])
            self.var = ad.io.read_elem(self.file["var"])
        except Exception as exc:  # noqa: BLE001 - one line naming the file
            raise InputError(path, f"cannot read h5ad: {str(exc).splitlines()[0]}") from None
        key = "X" if layer in (None, "X") else f"layers/{layer}"
        if key not in self.file:
            have = ", ".join(self.file["layers"]) if "layers" in self.file else ""
            raise InputError(path, f"has no layer {layer!r} (layers: {have or 'none'})")
        self.node = self.file[key]
        self.indptr = None  # dense: rows read as array slices
        if not isinstance(self.node, h5py.Dataset):
            kind = str(self.node.attrs.get("encoding-type", ""))
            if kind != "csr_matrix":
                raise InputError(path, f"layer {layer!r} is stored as {kind or 'unknown'}; the minibatch fit reads "
                                       "CSR rows")
            self.indptr = self.node["indptr"][:]  # one number per cell; the values are read per row range
        io.check_counts_dtype((self.node if self.indptr is None else self.node["data"]).dtype, path, self.what)
        self.mask = contract.gene_mask(self.var, genes, path)
        self.var = self.var.loc[self.mask]
        self.shape = (len(self.obs), int(self.mask.sum()))
        if 0 in self.shape:
            raise InputError(path, f"{self.what} is empty ({self.shape[0]} cells x {self.shape[1]} genes)")

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop``, selected genes, dense float32; `InputError` for NaN or negative values."""
        block = read_rows(self.node, start, stop, self.indptr)[:, self.mask]
        bad = io.count_bad_values(io.matrix_values(block), integer=False)
        io.raise_bad_counts(bad, self.path, f"{self.what} (rows {start}-{stop})")
        return np.asarray(block if self.indptr is None else block.toarray(), dtype=np.float32)

    def truth(self):
        """(theta_true, beta_true, blocks) when the file holds a block simulation's truth, else None."""
        import anndata as ad
        f = self.file
        if "theta_true" in f.get("obsm", {}) and "beta_true" in f.get("varm", {}) and "block" in self.obs:
            return (np.asarray(ad.io.read_elem(f["obsm/theta_true"])),
                    np.asarray(ad.io.read_elem(f["varm/beta_true"]))[self.mask],
                    self.obs["block"].astype(str).to_numpy())
        return None

    def close(self) -> None:
        """Close the file."""
        self.file.close()
