"""Readers, writers and input validation for count matrices and tables.

Everything that opens a user file goes through here, so that a bad input always fails the same
way: an `InputError` whose message names the file and the problem. Outputs are written to a
temporary name next to the target and renamed at the end (`atomic_output`), so a failed step
never leaves a partial file behind.

pandas is imported by the functions that use it, not by this module: a step that only needs
`atomic_output` or `require_file` (the numpy MTL shard) does not pay for importing it.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

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


def read_counts(path, fmt: str = "auto", csv_orientation: str = "auto"):
    """Read a cells x genes count matrix into an AnnData with CSR ``X``.

    Formats: ``h5ad``; ``10x_mtx`` (folder with matrix.mtx(.gz), barcodes, features/genes, or a Cell Ranger
    output folder above it: `scfactor.core.cellranger.matrix_source`);
    ``10x_h5`` (Cell Ranger HDF5); ``csv`` (a wide table, genes as rows and cells as columns, first
    column ``gene``, or the transpose: see `csv_orientation`); ``nnmf_h5`` (neuralNMF ``write_h5``: group
    ``matrix`` with barcodes, indptr, indices, data, shape and ``features/id``; rows are cells).
    10x inputs keep gene symbols as ``var_names`` (duplicates included: see
    `scfactor.core.gene_names.set_gene_names`) with ``var['symbol']`` and ``var['gene_id']``.
    """
    p = require_file(path)
    if p.is_dir() and fmt in ("auto", "10x_mtx"):  # a matrix folder, or a Cell Ranger output folder above it
        from .cellranger import matrix_source
        p = matrix_source(p, h5=fmt == "auto")
    fmt = detect_format(p) if fmt == "auto" else fmt
    if fmt not in COUNT_FORMATS:
        raise InputError(p, f"unknown format {fmt!r}")
    if csv_orientation not in CSV_ORIENTATIONS:
        raise InputError(p, f"unknown csv orientation {csv_orientation!r}")
    try:
        adata = _read_csv(p, csv_orientation) if fmt == "csv" else _READERS[fmt](p)
    except InputError:
        raise
    except Exception as exc:  # any parser failure is an unreadable file, said in one line
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputError(p, f"cannot read as {fmt}: {msg}") from None
    import scipy.sparse as sp
    if not sp.issparse(adata.X):
        adata.X = sp.csr_matrix(adata.X)
    adata.X = sp.csr_matrix(adata.X)
    adata.obs_names = adata.obs_names.astype(str)
    adata.var_names = adata.var_names.astype(str)
    return adata


def _read_h5ad(p):
    import anndata as ad
    return ad.read_h5ad(p)


def _tenx_var(adata):
    """10x gene columns under one pair of names: ``var['symbol']`` (var_names) and ``var['gene_id']``."""
    adata.var["symbol"] = adata.var_names.astype(str)
    if "gene_ids" in adata.var:
        adata.var["gene_id"] = adata.var.pop("gene_ids").astype(str)
    return adata


def _read_10x_mtx(p):
    import warnings

    import scanpy as sc
    if _feature_columns(p) < 3:  # features.tsv of one or two columns (other aligners' output): scanpy needs three
        return _tenx_var(_read_mtx_folder(p))
    with warnings.catch_warnings():  # duplicated symbols are handled (and reported) by set_gene_names
        warnings.filterwarnings("ignore", message=".*not unique.*")
        return _tenx_var(sc.read_10x_mtx(p, var_names="gene_symbols", make_unique=False))


def _feature_columns(p) -> int:
    """Columns of the first line of a 10x folder's ``features.tsv(.gz)`` (3 when absent: ``genes.tsv`` layout)."""
    for name in ("features.tsv.gz", "features.tsv"):
        if (p / name).is_file():
            with (gzip.open if name.endswith(".gz") else open)(p / name, "rt") as f:
                return len(f.readline().rstrip("\r\n").split("\t"))
    return 3


def _read_mtx_folder(p):
    """A 10x-style folder whose ``features.tsv(.gz)`` has one column (IDs) or two (IDs, symbols): cells x genes
    CSR counts, ``var_names`` the symbols (else the IDs), ``var['gene_ids']`` the IDs."""
    import anndata as ad
    import pandas as pd
    import scipy.io
    import scipy.sparse as sp

    def table(stem):
        path = p / f"{stem}.gz" if (p / f"{stem}.gz").is_file() else p / stem
        return pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False)
    mtx = p / "matrix.mtx.gz" if (p / "matrix.mtx.gz").is_file() else p / "matrix.mtx"
    x = sp.csr_matrix(scipy.io.mmread(mtx).T)
    features, cells = table("features.tsv"), table("barcodes.tsv")
    if x.shape != (len(cells), len(features)):
        raise InputError(p, f"matrix.mtx is {x.shape[1]} genes x {x.shape[0]} cells but the folder lists "
                            f"{len(features)} features and {len(cells)} barcodes")
    names = features[1] if features.shape[1] > 1 else features[0]
    return ad.AnnData(x, obs=pd.DataFrame(index=cells[0].to_numpy()),
                      var=pd.DataFrame({"gene_ids": features[0].to_numpy()}, index=names.to_numpy()))


def _read_10x_h5(p):
    import warnings

    import scanpy as sc
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not unique.*")
        return _tenx_var(sc.read_10x_h5(p))


#: layouts of a wide counts table (``csv_orientation``)
CSV_ORIENTATIONS = ("auto", "genes_x_cells", "cells_x_genes")
_BARCODE = re.compile(r"[ACGTN]{8,}")
_CELL_NAME = re.compile(r"^(cell|barcode)[_.-]?\d+$", re.I)
_GENE_NAME = re.compile(r"^(ENS[A-Z]*G\d{6,}(\.\d+)?|(MT|mt|Mt)-.+|gene[_.-]?\d+)$")
_GENE_HEADERS = {"gene", "genes", "gene_id", "gene_ids", "gene_name", "gene_names", "gene_symbol", "symbol",
                 "symbols", "feature", "features", "feature_id", "ensembl", "ensembl_id"}
_CELL_HEADERS = {"cell", "cells", "barcode", "barcodes", "cell_id", "cell_barcode", "cellbarcode", "obs_names"}


def _fraction(names, pattern, search=False) -> float:
    names = list(map(str, names))
    if len(names) > 500:
        names = [names[i] for i in np.linspace(0, len(names) - 1, 500).astype(int)]
    if not names:
        return 0.0
    test = pattern.search if search else pattern.match
    return sum(bool(test(n)) for n in names) / len(names)


def guess_csv_orientation(row_names, column_names, first_header=None) -> tuple[str | None, str]:
    """Guess whether a wide table has genes or cells as rows, from its names; returns (orientation, why).

    Evidence, strongest first: the first column's header (``gene``, ``symbol``, ... or ``cell``,
    ``barcode``, ...); cell barcodes (runs of 8+ A/C/G/T) on one axis only; gene names (Ensembl IDs,
    ``MT-`` genes) on one axis only. Without evidence the orientation is None. The shape alone decides
    nothing: data sets have more genes than cells as often as the reverse.
    """
    head = str(first_header or "").strip().lower()
    if head in _GENE_HEADERS:
        return "genes_x_cells", f"the first column is named {first_header!r}"
    if head in _CELL_HEADERS:
        return "cells_x_genes", f"the first column is named {first_header!r}"
    rows_bc, cols_bc = _fraction(row_names, _BARCODE, True), _fraction(column_names, _BARCODE, True)
    rows_bc = max(rows_bc, _fraction(row_names, _CELL_NAME))
    cols_bc = max(cols_bc, _fraction(column_names, _CELL_NAME))
    if max(rows_bc, cols_bc) >= 0.5 and abs(rows_bc - cols_bc) >= 0.5:
        axis = "rows" if rows_bc > cols_bc else "columns"
        return ("cells_x_genes" if axis == "rows" else "genes_x_cells"), f"the {axis} are named like cell barcodes"
    rows_g, cols_g = _fraction(row_names, _GENE_NAME), _fraction(column_names, _GENE_NAME)
    if rows_g != cols_g and max(rows_g, cols_g) > 0:
        axis = "rows" if rows_g > cols_g else "columns"
        return ("genes_x_cells" if axis == "rows" else "cells_x_genes"), \
            f"the {axis} hold gene names (Ensembl IDs or MT- genes)"
    return None, "nothing in the row or column names tells genes from cells"


def _read_csv(p, orientation: str = "auto"):
    import anndata as ad
    import pandas as pd
    from .log import LOG
    with (gzip.open if p.name.lower().endswith(".gz") else open)(p, "rt", encoding="utf-8-sig") as f:
        sep = "\t" if "\t" in f.readline() else ","
    df = pd.read_csv(p, sep=sep, index_col=0, encoding="utf-8-sig")
    if df.shape[1] == 0:
        raise InputError(p, "no data columns after the first (name) column")
    bad = df.columns[~df.dtypes.map(pd.api.types.is_numeric_dtype).values]
    if len(bad):
        raise InputError(p, f"non-numeric values in column {bad[0]!r}")
    if orientation == "auto":
        orientation, why = guess_csv_orientation(df.index, df.columns, df.index.name)
        log = LOG.info if orientation else LOG.warning
        orientation = orientation or "genes_x_cells"
        log("%s: read as %s (%d rows x %d columns): %s%s; set csv_orientation (--csv-orientation) if this is "
            "wrong", p, "genes as rows, cells as columns" if orientation == "genes_x_cells" else
            "cells as rows, genes as columns", df.shape[0], df.shape[1], why,
            "" if log is LOG.info else ", so the default layout is assumed")
    if orientation == "genes_x_cells":
        cells, genes, x = df.columns, df.index, df.to_numpy().T
    else:
        cells, genes, x = df.index, df.columns, df.to_numpy()
    import scipy.sparse as sp
    return ad.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame(index=pd.Index(cells.astype(str))),
                      var=pd.DataFrame(index=pd.Index(genes.astype(str))))


def _read_nnmf_h5(p):
    import anndata as ad
    import h5py
    import pandas as pd
    import scipy.sparse as sp
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
    return x.data if is_sparse(x) else np.asarray(x).ravel()


def is_sparse(x) -> bool:
    """Whether ``x`` is a scipy sparse matrix, without importing scipy (0.1-0.3 CPU s; a process that holds
    one has imported it already): `scfactor.core` is imported by every step, most never touch sparse data."""
    import sys
    sp = sys.modules.get("scipy.sparse")
    return sp is not None and sp.issparse(x)


def validate_counts(x, path, what: str = "X", integer: bool = True) -> None:
    """Raise `InputError` unless ``x`` is a non-empty, finite, non-negative (integer) matrix."""
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(path, f"{what} is empty ({x.shape[0]} cells x {x.shape[1]} genes)")
    v = matrix_values(x)
    check_counts_dtype(v.dtype, path, what)
    raise_bad_counts(count_bad_values(v, integer), path, what)


def check_counts_dtype(dtype, path, what: str = "X") -> None:
    """Raise `InputError` unless ``dtype`` is numeric (bool, int, unsigned or float)."""
    if np.dtype(dtype).kind not in "biuf":
        raise InputError(path, f"{what} has non-numeric dtype {dtype}")


def count_bad_values(v: np.ndarray, integer: bool = True) -> np.ndarray:
    """Counts of NaN / infinite, negative and (when ``integer``) non-integer values among ``v``: three ints that
    add up over the chunks of a matrix read piece by piece (then `raise_bad_counts`)."""
    bad = [0, int(np.count_nonzero(v < 0)), 0]
    if v.dtype.kind == "f":
        bad[0] = int(np.count_nonzero(~np.isfinite(v)))
        if integer:
            bad[2] = int(np.count_nonzero(v != np.round(v)))
    return np.array(bad, dtype=np.int64)


def raise_bad_counts(bad, path, what: str = "X") -> None:
    """Raise `InputError` for the first non-zero count of `count_bad_values` (NaN, then negative, then fraction)."""
    n_bad, n_neg, n_frac = map(int, bad)
    if n_bad:
        raise InputError(path, f"{what} has {n_bad} NaN or infinite values")
    if n_neg:
        raise InputError(path, f"{what} has {n_neg} negative values; counts must be >= 0")
    if n_frac:
        raise InputError(path, f"{what} has {n_frac} non-integer values; raw counts are required")


#: what `validate_names` adds for duplicated cell names in one input file of several samples' cells
JOINED_SAMPLES_HINT = (": barcodes of several samples joined without a prefix? Give the samples in a sample sheet "
                       "(shared barcodes get a '<sample>_' prefix) or make the names unique in the file")


def validate_names(adata, path, cell_hint: str = "") -> None:
    """Raise `InputError` on duplicated cell or gene names (``cell_hint`` ends the message for cells)."""
    for axis, names, hint in (("cell", adata.obs_names, cell_hint), ("gene", adata.var_names, "")):
        dup = names[names.duplicated()]
        if len(dup):
            raise InputError(path, f"{len(dup)} duplicated {axis} names (first: {dup[0]!r}){hint}")


def require_columns(df, columns: Sequence[str], path, what: str = "table") -> None:
    """Raise `InputError` if any of ``columns`` is missing from ``df`` (a DataFrame, or the list of its
    column names)."""
    have = list(getattr(df, "columns", df))
    missing = [c for c in columns if c not in have]
    if missing:
        raise InputError(path, f"{what} lacks column(s) {', '.join(map(repr, missing))}; "
                               f"has {', '.join(map(str, have[:10]))}")


def table_separator(path) -> str:
    """The separator of a table file from its suffix: tab for .tsv / .txt (gzipped or not), else comma."""
    name = Path(path).name.lower().removesuffix(".gz")
    return "\t" if name.endswith((".tsv", ".txt")) else ","


def read_table(path, **kwargs) -> pd.DataFrame:
    """Read a CSV/TSV (gzip allowed; separator from the suffix) or raise `InputError`."""
    p = require_file(path)
    kwargs.setdefault("sep", table_separator(p))
    import pandas as pd
    try:
        return pd.read_csv(p, **kwargs)
    except Exception as exc:
        raise InputError(p, f"cannot read table: {str(exc).splitlines()[0]}") from None


def read_lines(path) -> list[str]:
    """Non-empty stripped lines of a text file (gzip allowed; CRLF line ends and a UTF-8 BOM tolerated)."""
    p = require_file(path)
    opener = gzip.open if p.name.endswith(".gz") else open
    try:
        with opener(p, "rt", encoding="utf-8-sig") as f:
            return [ln.strip() for ln in f if ln.strip()]
    except (UnicodeDecodeError, OSError) as exc:
        raise InputError(p, f"cannot read as UTF-8 text: {str(exc).splitlines()[0]}") from None


def h5ad_n_obs(path) -> int | None:
    """Cells of an ``.h5ad`` from its ``obs`` index alone (no matrix read); None when the file cannot be read that
    way (the full loader then reports the problem)."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            obs = f["obs"]
            return int(obs[obs.attrs["_index"]].shape[0])
    except Exception:  # noqa: BLE001 - any unreadable file goes to the full loader, which names the problem
        return None


def _first_line(exc: Exception) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def read_h5ad(path, backed: bool = False):
    """Read an ``.h5ad`` or raise `InputError` naming the file."""
    import anndata as ad
    p = require_file(path)
    try:
        return ad.read_h5ad(p, backed="r" if backed else None)
    except Exception as exc:
        raise InputError(p, f"cannot read h5ad: {_first_line(exc)}") from None


@contextlib.contextmanager
def h5ad_without_matrices(path):
    """Yield ``(adata, x)``: the ``obs``, ``var``, ``obsm`` and ``uns`` of an ``.h5ad`` as an AnnData without
    ``X``, ``layers`` or ``obsp``, and its ``X`` left on disk (to read rows from, `read_rows`), or `InputError`.

    ``anndata``'s backed mode keeps only ``X`` on disk and loads ``layers`` whole, which is the same count
    matrix again in the steps' outputs (GBs at atlas scale); the file is closed when the block ends."""
    import anndata as ad
    import h5py
    from anndata.io import read_elem, sparse_dataset
    p = require_file(path)
    try:
        fh = h5py.File(p, "r")
    except OSError as exc:
        raise InputError(p, f"cannot read h5ad: {_first_line(exc)}") from None
    try:
        try:
            parts = {k: read_elem(fh[k]) for k in ("obs", "var", "obsm", "uns") if k in fh}
            x = fh["X"] if isinstance(fh.get("X"), h5py.Dataset) else sparse_dataset(fh["X"]) if "X" in fh else None
            adata = ad.AnnData(**parts)
        except Exception as exc:  # noqa: BLE001 - any malformed file: one line naming it
            raise InputError(p, f"cannot read h5ad: {_first_line(exc)}") from None
        yield adata, x
    finally:
        fh.close()


def read_rows(x, rows, block: int = 50_000):
    """Rows ``rows`` (sorted, unique) of a matrix ``x`` read in contiguous blocks of ``block`` rows, as CSR.

    For a backed (on-disk) matrix: a contiguous slice decompresses each stored chunk once, where a scattered
    row selection would decompress chunks again and again, and memory holds one block plus the rows kept."""
    import scipy.sparse as sp
    from .csr_stack import stack_rows
    rows = np.asarray(rows, dtype=np.int64)

    def parts():
        for start in range(0, int(x.shape[0]), block):
            lo, hi = np.searchsorted(rows, [start, start + block])
            if hi > lo:
                yield sp.csr_matrix(x[start:start + block])[rows[lo:hi] - start]
    return stack_rows(parts(), int(x.shape[1]), x.dtype)


def get_matrix(adata, layer: str | None, path):
    """``adata.layers[layer]`` (or ``X`` when layer is None / 'X'), or `InputError` if absent."""
    if layer in (None, "X"):
        return adata.X
    if layer not in adata.layers:
        raise InputError(path, f"has no layer {layer!r} (layers: {', '.join(adata.layers) or 'none'})")
    return adata.layers[layer]
