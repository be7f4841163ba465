"""Sample sheets: one data set made of several samples (``datasets.<name>.sheet``, docs/own-data.md).

A sheet is a tab-separated (or comma-separated: told by its header line) file with a header line and one row
per sample. Required columns: ``sample``
(a name: letters, digits, ``.``, ``_``, ``-``) and ``path`` (a 10x folder, 10x ``.h5``, ``.h5ad`` or CSV;
relative paths are relative to the sheet's folder). Optional: ``batch``, ``condition`` and any other
column, copied to ``obs`` for that sample's cells. Blank lines and lines starting with ``#`` are skipped.
Every problem fails with one line naming the sheet and the line.

The samples are read one by one, then joined: genes present in every sample are kept (the intersection;
a warning line gives the number dropped), ``obs['sample']`` names each cell's sample, and barcodes found
in more than one sample are prefixed with ``<sample>_`` (a log line gives the count).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.cellranger import matrix_source
from ..core.config import NAME
from ..core.errors import InputError
from ..core.log import LOG

REQUIRED = ("sample", "path")
#: obs columns the preprocess step writes itself: a sheet column of that name would be overwritten
RESERVED = ("n_counts", "n_genes", "pct_mito", "label")
_NAME_RE = re.compile(rf"^{NAME}$")
#: the files of a 10x folder that are read (declared as inputs of the preprocess rule)
TENX_FILES = ("matrix.mtx", "matrix.mtx.gz", "barcodes.tsv", "barcodes.tsv.gz", "features.tsv",
              "features.tsv.gz", "genes.tsv", "genes.tsv.gz")


@dataclass(frozen=True)
class Sample:
    """One row of a sample sheet: name, counts path (absolute or relative to the cwd), sheet line, metadata."""

    name: str
    path: Path
    line: int
    batch: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Sheet:
    """A validated sample sheet: its path, samples (in sheet order) and metadata columns."""

    path: Path
    samples: tuple
    columns: tuple

    @property
    def has_batch(self) -> bool:
        """Whether the sheet has a ``batch`` column."""
        return "batch" in self.columns

    @property
    def default_batch_key(self) -> str:
        """The batch key of a data set read from this sheet when none is configured: batch, else sample."""
        return "batch" if self.has_batch else "sample"


def _rows(path: Path, delimiter: str = "\t"):
    """(line number, fields) of the non-blank, non-comment lines of a TSV (or of a CSV, with ``delimiter``)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for number, fields in enumerate(csv.reader(f, delimiter=delimiter), start=1):
                if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
                    continue
                yield number, [v.strip() for v in fields]
    except UnicodeDecodeError as exc:
        raise InputError(path, f"cannot read as UTF-8 text ({exc.reason})") from None


def read_sheet(path, check_files: bool = True) -> Sheet:
    """Read and validate a sample sheet (see the module docstring); `InputError` naming the line otherwise.

    ``check_files``: also require every sample's path to exist.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "sample sheet does not exist" if not path.exists() else "sample sheet is not a file")
    rows = list(_rows(path))
    if not rows:
        raise InputError(path, "sample sheet is empty (expected a header line with columns sample and path)")
    head_line, header = rows[0]
    separated = "tab-separated"
    if len(header) == 1 and "," in header[0]:  # no tab in the header but commas: a CSV sheet
        LOG.info("%s: a comma-separated sample sheet", path)
        rows, separated = list(_rows(path, ",")), "comma-separated"
        head_line, header = rows[0]
    dup = [c for c, n in Counter(header).items() if n > 1]
    if dup:
        raise InputError(path, f"line {head_line}: column {dup[0]!r} appears twice in the header")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(path, f"line {head_line}: the header has no {missing[0]!r} column (columns: "
                               f"{', '.join(h for h in header if h) or 'none'}; required: sample, path)")
    if "" in header:
        raise InputError(path, f"line {head_line}: column {header.index('') + 1} of the header has no name")
    reserved = [c for c in header if c in RESERVED]
    if reserved:
        raise InputError(path, f"line {head_line}: column {reserved[0]!r} is written by the preprocess step; "
                               "rename it")
    if len(rows) == 1:
        raise InputError(path, "sample sheet has a header but no sample rows")
    meta_cols = tuple(c for c in header if c not in ("sample", "path"))
    samples, seen = [], {}
    for line, fields in rows[1:]:
        if len(fields) != len(header):
            raise InputError(path, f"line {line}: {len(fields)} {separated} fields, the header has {len(header)}")
        row = dict(zip(header, fields))
        name = row["sample"]
        where = f"line {line}"
        if not name:
            raise InputError(path, f"{where}: empty value in column 'sample'")
        if not _NAME_RE.match(name):
            raise InputError(path, f"{where}: sample name {name!r} is not a valid name (use letters, digits, "
                                   "'.', '_', '-', starting with a letter or digit)")
        if name in seen:
            raise InputError(path, f"{where}: duplicate sample name {name!r} (also on line {seen[name]})")
        seen[name] = line
        where = f"line {line} (sample {name!r})"
        if not row["path"]:
            raise InputError(path, f"{where}: empty value in column 'path'")
        sample_path = Path(row["path"]).expanduser()
        if not sample_path.is_absolute():
            sample_path = path.parent / sample_path
        if check_files and not sample_path.exists():
            raise InputError(path, f"{where}: path {str(sample_path)!r} does not exist")
        batch = row.get("batch")
        if "batch" in row:
            if not batch:
                raise InputError(path, f"{where}: empty value in column 'batch' (every sample needs a batch, "
                                       "or leave the column out to use the sample names)")
            if not _NAME_RE.match(batch):
                raise InputError(path, f"{where}: batch {batch!r} is not a valid name (use letters, digits, "
                                       "'.', '_', '-', starting with a letter or digit)")
        metadata = {c: (row[c] if row[c] != "" else None) for c in meta_cols}
        samples.append(Sample(name, sample_path, line, batch, metadata))
    return Sheet(path, tuple(samples), meta_cols)


def sample_files(path) -> list[str]:
    """The files a sample's counts are read from: a 10x folder's matrix, barcodes and features (the filtered
    matrix's of a Cell Ranger run folder: `scfactor.core.cellranger.matrix_source`); else itself."""
    p = Path(path)
    if p.is_dir():
        try:
            p = matrix_source(p)
        except InputError:  # the preprocess job says what is wrong with the folder
            return [str(p)]
    if p.is_dir():
        files = [str(p / name) for name in TENX_FILES if (p / name).is_file()]
        return files or [str(p)]
    return [str(p)]


def join_samples(sheet: Sheet, adatas: list):
    """Concatenate the samples' AnnData (one per sheet row, in order) into one data set.

    Genes: the intersection (warning with the number dropped). ``obs['sample']`` and the sheet's other
    columns are set per sample (a sheet column replaces an obs column of the same name, said in the log).
    Barcodes occurring in more than one sample are prefixed with ``<sample>_`` in every sample that has
    them (log line with the counts).
    """
    import anndata as ad
    names = [s.name for s in sheet.samples]
    gene_sets = [set(a.var_names) for a in adatas]
    common = set.intersection(*gene_sets)
    union = set.union(*gene_sets)
    if not common:
        raise InputError(sheet.path, "the samples share no gene name (check gene_names and the references "
                                     "the samples were counted with)")
    if len(union) > len(common):
        LOG.warning("%s: %d of %d genes are not in every sample and are dropped (%d genes kept: the "
                    "intersection over %d samples)", sheet.path, len(union) - len(common), len(union),
                    len(common), len(adatas))
    order = [g for g in adatas[0].var_names if g in common]
    seen = Counter(bc for a in adatas for bc in a.obs_names)
    colliding = {bc for bc, n in seen.items() if n > 1}
    parts = []
    n_renamed = 0
    for sample, a in zip(sheet.samples, adatas):
        a = a[:, order].copy()
        clash = [c for c in sheet.columns + ("sample",) if c in a.obs.columns]
        if clash:
            LOG.info("%s: sample %s: obs column(s) %s replaced by the sample sheet's", sheet.path, sample.name,
                     ", ".join(map(repr, clash)))
        a.obs["sample"] = sample.name
        for col, value in sample.metadata.items():
            a.obs[col] = value if value is not None else np.nan
        if colliding:
            hit = a.obs_names.isin(list(colliding))
            n_renamed += int(hit.sum())
            a.obs_names = np.where(hit, sample.name + "_" + a.obs_names.astype(str), a.obs_names.astype(str))
        parts.append(a)
    if colliding:
        LOG.info("%s: %d barcodes occur in more than one sample; prefixed with '<sample>_' (%d cells renamed)",
                 sheet.path, len(colliding), n_renamed)
    joined = ad.concat(parts, join="inner", merge="first", index_unique=None)
    dup = joined.obs_names[joined.obs_names.duplicated()]
    if len(dup):
        raise InputError(sheet.path, f"cell name {dup[0]!r} is still duplicated after prefixing colliding "
                                     "barcodes with the sample name; rename the samples or barcodes")
    joined.obs["sample"] = pd.Categorical(joined.obs["sample"], categories=names)
    for col in sheet.columns:  # sheet values are text; an empty cell is a missing value
        joined.obs[col] = pd.Categorical(joined.obs[col].astype(object).where(joined.obs[col].notna(), None))
    return joined
