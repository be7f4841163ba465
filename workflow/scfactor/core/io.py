"""Readers, writers and input validation for count matrices and tables.

Everything that opens a user file goes through here, so that a bad input always fails the same
way: an `InputError` whose message names the file and the problem. Outputs are written to a
temporary name next to the target and renamed at the end (`atomic_output`), so a failed step
never leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import InputError

COUNT_FORMATS = ("auto", "h5ad", "10x_mtx", "10x_h5", "csv", "nnmf_h5")


# --------------------------------------------------------------------------- outputs
@contextlib.contextmanager
def atomic_output(path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the final suffix (so writers that dispatch on it still work).
    On any exception the temporary file (or folder) is removed and the exception re-raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


@contextlib.contextmanager
def all_or_nothing(*paths) -> Iterator[None]:
    """Group the writes of a step with several outputs: if the block fails, none of ``paths`` is left.

    Each file is still written atomically (`atomic_output`); this removes the ones already renamed
    into place when a later write fails, so a step leaves all of its outputs or none.
    """
    try:
        yield
    except BaseException:
        for p in map(Path, paths):
            if p.is_dir() and not p.is_symlink():
                import shutil
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists() or p.is_symlink():
                p.unlink()
        raise


def write_h5ad(adata, path) -> None:
    """Write ``adata`` to ``path`` atomically (gzip-compressed sparse/dense arrays)."""
    with atomic_output(path) as tmp:
        adata.write_h5ad(tmp, compression="gzip")


def write_table(df: pd.DataFrame, path, index: bool = False) -> None:
    """Write a DataFrame as TSV (or CSV if the name ends in .csv) atomically."""
    sep = "," if str(path).endswith(".csv") else "\t"
    with atomic_output(path) as tmp:
        df.to_csv(tmp, sep=sep, index=index)


# --------------------------------------------------------------------------- inputs
def require_file(path, what: str = "input file") -> Path:
    """Return ``Path(path)`` or raise `InputError` if it does not exist or is not readable."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, f"{what} does not exist")
    if not os.access(p, os.R_OK):
        raise InputError(p, f"{what} is not readable")
    return p


def detect_format(path) -> str:
    """Guess a count-matrix format from the path (see `COUNT_FORMATS`)."""
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        return "10x_mtx"
    if name.endswith(".h5ad"):
        return "h5ad"
    if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")):
        return "csv"
    if name.endswith(".h5"):
        import h5py
        try:
            with h5py.File(p, "r") as f:
                m = f.get("matrix")
                if m is not None and "features" in m and "id" in m["features"] and "name" not in m["features"]:
                    return "nnmf_h5"
        except OSError as exc:
            raise InputError(p, f"not a readable HDF5 file ({exc.__class__.__name__})") from None
        return "10x_h5"
    raise InputError(p, "cannot tell the format from the name; pass one of " + ", ".join(COUNT_FORMATS[1:]))


def read_counts(path, fmt: str = "auto"):
    """Read a cells x genes count matrix into an AnnData with CSR ``X``.

    Formats: ``h5ad``; ``10x_mtx`` (folder with matrix.mtx(.gz), barcodes, features/genes);
    ``10x_h5`` (Cell Ranger HDF5); ``csv`` (the seed-000 wide table: genes as rows, cells as
    columns, first column ``gene``); ``nnmf_h5`` (neuralNMF ``write_h5``: group ``matrix`` with
    barcodes, indptr, indices, data, shape and ``features/id``; rows are cells).
    """
    p = require_file(path)
    fmt = detect_format(p) if fmt == "auto" else fmt
    if fmt not in COUNT_FORMATS:
        raise InputError(p, f"unknown format {fmt!r}")
    try:
        adata = _READERS[fmt](p)
    except InputError:
        raise
    except Exception as exc:  # any parser failure is an unreadable file, said in one line
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputError(p, f"cannot read as {fmt}: {msg}") from None
    if not sp.issparse(adata.X):
        adata.X = sp.csr_matrix(adata.X)
    adata.X = sp.csr_matrix(adata.X)
    adata.obs_names = adata.obs_names.astype(str)
    adata.var_names = adata.var_names.astype(str)
    return adata


def _read_h5ad(p):
    import anndata as ad
    return ad.read_h5ad(p)


def _read_10x_mtx(p):
    import scanpy as sc
    return sc.read_10x_mtx(p, var_names="gene_symbols", make_unique=False)


def _read_10x_h5(p):
    import scanpy as sc
    return sc.read_10x_h5(p)


def _read_csv(p):
    import anndata as ad
    sep = "\t" if ".tsv" in p.name.lower() else ","
    df = pd.read_csv(p, sep=sep, index_col=0)
    if df.shape[1] == 0:
        raise InputError(p, "no cell columns after the gene column")
    bad = df.columns[~df.dtypes.map(pd.api.types.is_numeric_dtype).values]
    if len(bad):
        raise InputError(p, f"non-numeric values in cell column {bad[0]!r}")
    x = sp.csr_matrix(df.to_numpy().T)
    return ad.AnnData(X=x, obs=pd.DataFrame(index=df.columns.astype(str)),
                      var=pd.DataFrame(index=df.index.astype(str)))


def _read_nnmf_h5(p):
    import anndata as ad
    import h5py
    with h5py.File(p, "r") as f:
        m = f["matrix"]
        shape = tuple(int(v) for v in m["shape"][()])
        x = sp.csr_matrix((m["data"][()], m["indices"][()], m["indptr"][()]), shape=shape)
        rows = [v.decode() if isinstance(v, bytes) else str(v) for v in m["barcodes"][()]]
        cols = [v.decode() if isinstance(v, bytes) else str(v) for v in m["features"]["id"][()]]
    return ad.AnnData(X=x, obs=pd.DataFrame(index=rows), var=pd.DataFrame(index=cols))


_READERS = {"h5ad": _read_h5ad, "10x_mtx": _read_10x_mtx, "10x_h5": _read_10x_h5,
            "csv": _read_csv, "nnmf_h5": _read_nnmf_h5}


def matrix_values(x) -> np.ndarray:
    """The stored values of a sparse or dense matrix (no copy for CSR/CSC)."""
    return x.data if sp.issparse(x) else np.asarray(x).ravel()


def validate_counts(x, path, what: str = "X", integer: bool = True) -> None:
    """Raise `InputError` unless ``x`` is a non-empty, finite, non-negative (integer) matrix."""
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(path, f"{what} is empty ({x.shape[0]} cells x {x.shape[1]} genes)")
    v = matrix_values(x)
    if v.dtype.kind not in "biuf":
        raise InputError(path, f"{what} has non-numeric dtype {v.dtype}")
    if v.dtype.kind == "f":
        n_bad = int(np.count_nonzero(~np.isfinite(v)))
        if n_bad:
            raise InputError(path, f"{what} has {n_bad} NaN or infinite values")
    n_neg = int(np.count_nonzero(v < 0))
    if n_neg:
        raise InputError(path, f"{what} has {n_neg} negative values; counts must be >= 0")
    if integer and v.dtype.kind == "f":
        n_frac = int(np.count_nonzero(v != np.round(v)))
        if n_frac:
            raise InputError(path, f"{what} has {n_frac} non-integer values; raw counts are required")


def validate_names(adata, path) -> None:
    """Raise `InputError` on duplicated cell or gene names."""
    for axis, names in (("cell", adata.obs_names), ("gene", adata.var_names)):
        dup = names[names.duplicated()]
        if len(dup):
            raise InputError(path, f"{len(dup)} duplicated {axis} names (first: {dup[0]!r})")


def require_columns(df: pd.DataFrame, columns: Sequence[str], path, what: str = "table") -> None:
    """Raise `InputError` if any of ``columns`` is missing from ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(path, f"{what} lacks column(s) {', '.join(map(repr, missing))}; "
                               f"has {', '.join(map(str, df.columns[:10]))}")


def read_table(path, **kwargs) -> pd.DataFrame:
    """Read a CSV/TSV (gzip allowed; separator from the suffix) or raise `InputError`."""
    p = require_file(path)
    name = p.name.lower().removesuffix(".gz")
    sep = "\t" if name.endswith((".tsv", ".txt")) else ","
    kwargs.setdefault("sep", sep)
    try:
        return pd.read_csv(p, **kwargs)
    except Exception as exc:
        raise InputError(p, f"cannot read table: {str(exc).splitlines()[0]}") from None


def read_lines(path) -> list[str]:
    """Non-empty stripped lines of a text file (gzip allowed; CRLF tolerated)."""
    p = require_file(path)
    opener = gzip.open if p.name.endswith(".gz") else open
    with opener(p, "rt") as f:
        return [ln.strip() for ln in f if ln.strip()]


def read_h5ad(path, backed: bool = False):
    """Read an ``.h5ad`` or raise `InputError` naming the file."""
    import anndata as ad
    p = require_file(path)
    try:
        return ad.read_h5ad(p, backed="r" if backed else None)
    except Exception as exc:
        raise InputError(p, f"cannot read h5ad: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def get_matrix(adata, layer: str | None, path):
    """``adata.layers[layer]`` (or ``X`` when layer is None / 'X'), or `InputError` if absent."""
    if layer in (None, "X"):
        return adata.X
    if layer not in adata.layers:
        raise InputError(path, f"has no layer {layer!r} (layers: {', '.join(adata.layers) or 'none'})")
    return adata.layers[layer]
