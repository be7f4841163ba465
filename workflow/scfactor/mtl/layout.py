"""Readers and writers of the trace-norm MTL notebook's (MTLRank) file layout.

A layout root holds::

    rpkm.hdf5                   group per tissue: exp (cells x genes), barcode, ensembl
    velo.hdf5                   group per tissue: velo (cells x genes, NaN = missing), barcode, ensembl
    tf_activity/mean_tf/<tissue>.csv   TF rows (symbols), gene columns (symbols); empty = 0
    tf_activity/sum_tf/<tissue>.csv    same; log2(x + 1)-scaled on reading, as in the notebook
    ensembl_to_symbol.csv       index column, then ``ensembl_id``, ``gene_symbol``
    tf_list.csv                 index column, then ``Ensembl ID``

The notebook's own file names ``<tissue>_<suffix>.csv`` in the activity folders are accepted too.
Every problem (a tissue missing from one file, duplicated barcodes, an all-NaN velocity matrix,
negative expression, ...) raises `InputError` naming the file, before anything is written.
The readers import no pandas (`scfactor.mtl.tables`): the numpy shard process reads the layout with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.config import check_name
from ..core.errors import InputError
from ..core.io import atomic_output, require_columns, require_file
from .tables import NA_STRINGS, column, read_rows, to_float

RPKM = "rpkm.hdf5"
VELO = "velo.hdf5"
MEAN_DIR = "tf_activity/mean_tf"
SUM_DIR = "tf_activity/sum_tf"
E2S = "ensembl_to_symbol.csv"
TF_LIST = "tf_list.csv"


def sanitize_tissue(name: str) -> str:
    """Tissue name usable as a file name / wildcard (`scfactor.core.config.NAME`).

    Spaces become ``_`` and other characters outside letters, digits, ``.``, ``_``, ``-`` are dropped
    (the notebook strips spaces and parentheses); a name left empty or not starting with a letter or
    digit raises `scfactor.core.config.ConfigError`.
    """
    out = re.sub(r"\s+", "_", str(name).strip())
    out = re.sub(r"[^A-Za-z0-9_.-]", "", out)
    return check_name(f"tissue {name!r} (sanitised)", out)


def layout_files(root, tissues) -> list[str]:
    """All files of a layout root that the per-tissue steps read (for rule inputs)."""
    root = Path(root)
    files = [root / RPKM, root / VELO, root / E2S, root / TF_LIST]
    for t in tissues:
        files += [root / MEAN_DIR / f"{t}.csv", root / SUM_DIR / f"{t}.csv"]
    return [str(f) for f in files]


# --------------------------------------------------------------------------- writing
def _strings(values) -> np.ndarray:
    return np.array([str(v).encode() for v in values], dtype="S")


def write_hdf5_groups(path, key: str, groups: dict) -> None:
    """Write ``{tissue: (matrix cells x genes, barcodes, ensembl)}`` as the notebook's hdf5 (atomic)."""
    import h5py
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for tissue, (mat, barcodes, ensembl) in groups.items():
                g = f.create_group(tissue)
                g.create_dataset(key, data=np.asarray(mat, dtype=np.float32), track_times=False,
                                 compression="gzip", compression_opts=4, shuffle=True)
                g.create_dataset("barcode", data=_strings(barcodes), track_times=False)
                g.create_dataset("ensembl", data=_strings(ensembl), track_times=False)


def write_activity(path, act) -> None:
    """Write a TF x gene activity table (TF rows, gene columns; zeros written as empty cells)."""
    with atomic_output(path) as tmp:
        act.replace(0.0, np.nan).to_csv(tmp, float_format="%.6g")


def write_e2s(root, ensembl_to_symbol) -> None:
    """Write ``<root>/ensembl_to_symbol.csv`` (index column, ensembl_id, gene_symbol)."""
    with atomic_output(Path(root) / E2S) as tmp:
        ensembl_to_symbol[["ensembl_id", "gene_symbol"]].reset_index(drop=True).to_csv(tmp)


def write_tf_list(root, tf_ensembl) -> None:
    """Write ``<root>/tf_list.csv`` (index column, ``Ensembl ID``)."""
    import pandas as pd
    with atomic_output(Path(root) / TF_LIST) as tmp:
        pd.DataFrame({"Ensembl ID": list(tf_ensembl)}).to_csv(tmp)


def write_id_tables(root, ensembl_to_symbol, tf_ensembl) -> None:
    """Write ensembl_to_symbol.csv (ensembl_id, gene_symbol) and tf_list.csv (Ensembl ID)."""
    write_e2s(root, ensembl_to_symbol)
    write_tf_list(root, tf_ensembl)


# --------------------------------------------------------------------------- reading
def _decode(arr) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in arr], dtype=object)


def hdf5_tissues(path) -> list[str]:
    """Group names (tissues) of a layout hdf5 file."""
    import h5py
    p = require_file(path)
    try:
        with h5py.File(p, "r") as f:
            return [k for k in f.keys() if isinstance(f[k], h5py.Group)]
    except OSError as exc:
        raise InputError(p, f"not a readable HDF5 file ({exc.__class__.__name__})") from None


def _open_group(path, tissue, key):
    import h5py
    p = require_file(path)
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise InputError(p, f"not a readable HDF5 file ({exc.__class__.__name__})") from None
    if tissue not in f:
        tissues = ", ".join(k for k in f.keys()) or "none"
        f.close()
        raise InputError(p, f"has no tissue group {tissue!r} (tissues: {tissues})")
    g = f[tissue]
    for k in (key, "barcode", "ensembl"):
        if k not in g:
            f.close()
            raise InputError(p, f"group {tissue!r} lacks dataset {k!r} (needs {key}, barcode, ensembl)")
    shape = g[key].shape
    nb, ng = g["barcode"].shape[0], g["ensembl"].shape[0]
    if len(shape) != 2 or shape != (nb, ng):
        f.close()
        raise InputError(p, f"group {tissue!r}: {key} has shape {shape}, expected "
                            f"({nb} barcodes, {ng} genes)")
    return f, g


def _unique(names, path, what) -> np.ndarray:
    """``names`` as an object array, or `InputError` if one repeats (the count of repeats, the first)."""
    seen, dup = set(), []
    for v in names:
        if v in seen:
            dup.append(v)
        seen.add(v)
    if dup:
        raise InputError(path, f"{len(dup)} duplicated {what} (first: {dup[0]!r})")
    return np.asarray(names, dtype=object)


def _positions(names) -> dict:
    """``{name: position}`` of unique names."""
    return {v: i for i, v in enumerate(names)}


def hdf5_genes(path, tissue: str, key: str) -> np.ndarray:
    """The ``ensembl`` (gene) names of one tissue group."""
    f, g = _open_group(path, tissue, key)
    with f:
        return _decode(g["ensembl"][()])


def _column_runs(cols, n_cols: int, chunk_cols) -> list:
    """``(first, stop)`` column ranges that cover the storage chunks holding the sorted columns ``cols`` of a
    dataset chunked ``chunk_cols`` columns wide (None: not chunked, one range of all columns). Reading only these
    ranges decompresses only those chunks (a shard's 25 velocity genes of hundreds, the TF columns)."""
    if not chunk_cols:
        return [(0, n_cols)]
    k = np.unique(np.asarray(cols) // chunk_cols)
    runs = np.split(k, np.flatnonzero(np.diff(k) > 1) + 1)
    return [(int(r[0]) * chunk_cols, min(n_cols, (int(r[-1]) + 1) * chunk_cols)) for r in runs]


def read_hdf5_matrix(path, tissue: str, key: str, genes=None, row_chunk: int = 4096):
    """Read ``(matrix float32 cells x genes, barcodes, genes)`` of one tissue group.

    ``genes``: read only these columns (in this order; all must exist), in row chunks so that
    memory stays cells x len(genes), and only the column ranges of the storage chunks that hold them.
    """
    f, g = _open_group(path, tissue, key)
    with f:
        barcodes = _unique(_decode(g["barcode"][()]), path, f"barcodes in group {tissue!r}")
        ens = _unique(_decode(g["ensembl"][()]), path, f"genes in group {tissue!r}")
        if genes is None:
            cols = np.arange(len(ens))
        else:
            pos = _positions(ens)
            cols = np.array([pos.get(g, -1) for g in genes], dtype=np.int64)
            if (cols < 0).any():
                miss = np.asarray(genes)[cols < 0]
                raise InputError(path, f"group {tissue!r} has no gene {miss[0]!r} "
                                       f"({len(miss)} of {len(cols)} requested genes absent)")
        order = np.argsort(cols)
        sorted_cols = cols[order]
        out = np.empty((len(barcodes), len(cols)), dtype=np.float32)
        ds = g[key]
        runs = _column_runs(sorted_cols, len(ens), ds.chunks[1] if ds.chunks and len(cols) else None)
        starts = np.array([a for a, _ in runs])
        offsets = np.cumsum([0] + [b - a for a, b in runs])[:-1]
        run = np.searchsorted(starts, sorted_cols, side="right") - 1
        local = sorted_cols - starts[run] + offsets[run]           # positions in the runs' concatenation
        for start in range(0, len(barcodes), row_chunk):
            rows = slice(start, start + row_chunk)
            block = np.concatenate([ds[rows, a:b] for a, b in runs], axis=1)[:, local] if len(cols) else \
                np.empty((min(row_chunk, len(barcodes) - start), 0))
            out[rows][:, order] = block
    return out, barcodes, ens[cols]


def _id_columns(path, *names) -> list:
    """The cells of columns ``names`` of an id table (its first column is the index), missing ones None."""
    header, body = read_rows(path)
    require_columns(header[1:], names, path, "id table")
    return [[None if c in NA_STRINGS else c for c in column(header, body, n)] for n in names]


def read_id_tables(root):
    """``({ensembl: symbol}, TF Ensembl ids)`` from ensembl_to_symbol.csv and tf_list.csv (rows with a
    missing id or symbol dropped, the first symbol of a repeated id kept; TF ids unique, in file order)."""
    root = Path(root)
    e2s = {}
    for ens, sym in zip(*_id_columns(root / E2S, "ensembl_id", "gene_symbol")):
        if ens is not None and sym is not None:
            e2s.setdefault(ens, sym)
    if not e2s:
        raise InputError(root / E2S, "has no ensembl_id -> gene_symbol rows")
    tfs = list(dict.fromkeys(t for t in _id_columns(root / TF_LIST, "Ensembl ID")[0] if t is not None))
    if not tfs:
        raise InputError(root / TF_LIST, "lists no TF")
    return e2s, np.asarray(tfs, dtype=object)


def activity_path(root, kind: str, tissue: str) -> Path:
    """The mean_tf / sum_tf CSV of ``tissue`` (``<tissue>.csv`` or the notebook's ``<tissue>_<x>.csv``)."""
    folder = Path(root) / (MEAN_DIR if kind == "mean" else SUM_DIR)
    exact = folder / f"{tissue}.csv"
    if exact.exists():
        return exact
    if folder.is_dir():
        cands = sorted(p for p in folder.glob("*.csv") if "_".join(p.stem.split("_")[:-1]) == tissue)
        if len(cands) == 1:
            return cands[0]
        if len(cands) > 1:
            raise InputError(folder, f"several activity files for tissue {tissue!r}: "
                                     f"{', '.join(p.name for p in cands)}")
    raise InputError(exact, f"tissue {tissue!r} has no {kind} TF activity file in {folder}")


@dataclass
class Activity:
    """An activity table as `read_activity` returns it: ``values`` genes x TFs and their names."""

    values: np.ndarray          # genes x TFs, float64, missing = 0
    genes: np.ndarray           # gene symbols (the file's columns)
    tfs: np.ndarray             # TF symbols (the file's rows)


def read_activity(path, log2: bool) -> Activity:
    """A TF x gene activity CSV (TF rows, gene columns) as genes x TFs (missing = 0; sum tables log2(x+1)-scaled)."""
    header, body = read_rows(path)
    if len(header) < 2 or not body:
        raise InputError(path, "activity table is empty (needs TF rows and gene columns)")
    genes = _unique(header[1:], path, "gene columns")
    tfs = _unique(["nan" if r[0] in NA_STRINGS else r[0] for r in body], path, "TF rows")
    v = to_float([r[1:] for r in body], path, genes)
    if np.isinf(v).any():
        raise InputError(path, "has infinite values")
    v = np.nan_to_num(v, nan=0.0)
    if log2:
        if (v < 0).any():
            raise InputError(path, f"has {int((v < 0).sum())} negative sum activities; log2(x+1) needs x >= 0")
        v = np.log2(v + 1.0)
    return Activity(np.ascontiguousarray(v.T), genes, tfs)


@dataclass
class TissueData:
    """One tissue of a layout, aligned: TF expression, velocity, activity (genes x TFs)."""

    tissue: str
    barcodes: np.ndarray
    tf_ids: np.ndarray          # Ensembl ids of the TFs (expression columns)
    expr: np.ndarray            # cells x TFs, log10(rpkm + 1), float32
    gene_ids: np.ndarray        # Ensembl ids of the velocity genes
    velo: np.ndarray            # cells x genes, float32, NaN = missing
    act_mean: np.ndarray = field(repr=False, default=None)   # genes x TFs
    act_sum: np.ndarray = field(repr=False, default=None)    # genes x TFs, log2(x+1)
    in_activity: np.ndarray = field(repr=False, default=None)  # genes present in the activity tables
    files: dict = field(default_factory=dict)

    def require_activity(self, genes) -> None:
        """Raise `InputError` if one of ``genes`` has no column in the activity tables."""
        pos = _positions(self.gene_ids)
        missing = [g for g in genes if g not in pos or not self.in_activity[pos[g]]]
        if missing:
            raise InputError(self.files["mean"], f"gene {missing[0]!r} is absent from the activity matrix "
                                                 f"({len(missing)} of {len(genes)} genes of the shard)")


def load_tissue(root, tissue: str, genes=None) -> TissueData:
    """Read and align one tissue of a layout root (see module docstring).

    TFs are the expression columns listed in tf_list.csv (expression order). ``genes``: the velocity
    genes to keep (default all). Activity entries missing from the tables are 0, as in the notebook; genes
    missing from the tables are flagged in ``in_activity`` (training on them is an error).
    """
    root = Path(root)
    files = {"rpkm": root / RPKM, "velo": root / VELO, "e2s": root / E2S, "tf_list": root / TF_LIST}
    e2s, tf_list = read_id_tables(root)
    # a tissue must be present in every file: check them all before the heavy reads
    for key, kind in (("rpkm", "exp"), ("velo", "velo")):
        f, _ = _open_group(files[key], tissue, kind)
        f.close()
    files["mean"] = activity_path(root, "mean", tissue)
    files["sum"] = activity_path(root, "sum", tissue)

    f, g = _open_group(files["rpkm"], tissue, "exp")
    with f:
        rp_genes = _unique(_decode(g["ensembl"][()]), files["rpkm"], f"genes in group {tissue!r}")
    tf_set = set(tf_list)
    tf_ids = rp_genes[np.array([g in tf_set for g in rp_genes], dtype=bool)]
    if len(tf_ids) == 0:
        raise InputError(files["tf_list"], f"none of its {len(tf_list)} TFs is an expression column of "
                                           f"tissue {tissue!r} in {files['rpkm']}")
    expr, bc_r, _ = read_hdf5_matrix(files["rpkm"], tissue, "exp", genes=tf_ids)
    if not np.isfinite(expr).all():
        raise InputError(files["rpkm"], f"group {tissue!r}: exp has NaN or infinite values")
    if (expr < 0).any():
        raise InputError(files["rpkm"], f"group {tissue!r}: exp has negative values")
    expr = np.log10(expr.astype(np.float64) + 1.0).astype(np.float32)

    velo, bc_v, gene_ids = read_hdf5_matrix(files["velo"], tissue, "velo", genes=genes)
    if np.isinf(velo).any():
        raise InputError(files["velo"], f"group {tissue!r}: velo has infinite values")
    if velo.size == 0 or np.isnan(velo).all():
        raise InputError(files["velo"], f"group {tissue!r}: velocity is missing (NaN) in every cell")
    if set(bc_r) != set(bc_v):
        n = len(set(bc_r) ^ set(bc_v))
        raise InputError(files["velo"], f"group {tissue!r}: barcodes differ from {files['rpkm']} "
                                        f"({n} barcodes in only one of the files)")
    pos = _positions(bc_v)
    velo = velo[np.array([pos[b] for b in bc_r], dtype=np.int64)]

    mean = read_activity(files["mean"], log2=False)
    summ = read_activity(files["sum"], log2=True)
    # a gene / TF in either table counts (the other table's entries for it are 0), as an outer join
    act_genes, act_tfs = {*mean.genes, *summ.genes}, {*mean.tfs, *summ.tfs}
    tf_sym = [e2s.get(t) for t in tf_ids]
    gene_sym = [e2s.get(g) for g in gene_ids]
    if not any(s in act_tfs for s in tf_sym if s is not None):
        raise InputError(files["mean"], f"none of the {len(tf_ids)} expressed TFs is a row of the activity table "
                                        f"(TF symbols via {files['e2s']})")
    in_act = np.array([s is not None and s in act_genes for s in gene_sym], dtype=bool)
    if not in_act.any():
        raise InputError(files["mean"], f"none of the {len(gene_ids)} velocity genes is a column of the "
                                        f"activity table (gene symbols via {files['e2s']})")

    def aligned(act):
        out = np.zeros((len(gene_ids), len(tf_ids)), dtype=np.float32)
        g_pos, t_pos = _positions(act.genes), _positions(act.tfs)
        rows = [(k, g_pos[s]) for k, s in enumerate(gene_sym) if in_act[k] and s in g_pos]
        cols = [(k, t_pos[s]) for k, s in enumerate(tf_sym) if s is not None and s in t_pos]
        if rows and cols:
            (r_out, r_in), (c_out, c_in) = zip(*rows), zip(*cols)
            out[np.ix_(r_out, c_out)] = act.values.astype(np.float32)[np.ix_(r_in, c_in)]
        return out

    return TissueData(tissue=tissue, barcodes=np.asarray(bc_r), tf_ids=np.asarray(tf_ids),
                      expr=expr, gene_ids=np.asarray(gene_ids), velo=velo,
                      act_mean=aligned(mean), act_sum=aligned(summ), in_activity=in_act,
                      files={k: str(v) for k, v in files.items()})


def check_tissues(root, tissues) -> None:
    """Raise `InputError` if one of ``tissues`` is missing from rpkm.hdf5, velo.hdf5 or the activity folders."""
    root = Path(root)
    have_r, have_v = set(hdf5_tissues(root / RPKM)), set(hdf5_tissues(root / VELO))
    for t in tissues:
        if t not in have_r:
            raise InputError(root / RPKM, f"has no tissue group {t!r} (tissues: {', '.join(sorted(have_r))})")
        if t not in have_v:
            raise InputError(root / VELO, f"has no tissue group {t!r} (tissues: {', '.join(sorted(have_v))})")
        activity_path(root, "mean", t)
        activity_path(root, "sum", t)
