"""The preprocess step: counts in, the preprocessed AnnData (see `contract`), QC table and figure out."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core import io
from ..core.errors import InputError, ScfactorError
from ..core.gene_names import choose_gene_names, gene_columns, looks_like_ids, match_genes
from ..core.log import LOG
from . import genes, qc
from .plots import qc_figure
from .sheet import join_samples, read_sheet


@dataclass
class Preprocessed:
    """The outputs of one data set: the AnnData, the per-batch QC table and the QC figure."""

    adata: object
    qc_table: pd.DataFrame
    figure: object


#: values of a batch column that mean "no value" (pandas writes a missing value as 'nan' once cast to text)
MISSING_BATCH = ("", "nan", "NaN", "None")


def split_batches(adata, batch_key, batches, path):
    """Set ``obs['batch']`` from ``batch_key`` and keep the requested batches (each non-empty).

    A cell without a value in ``batch_key`` is an error (it would otherwise form a batch called 'nan').
    """
    if batch_key is None:
        adata.obs["batch"] = "all"
    else:
        if batch_key not in adata.obs:
            raise InputError(path, f"has no obs column {batch_key!r} to split batches "
                                   f"(columns: {', '.join(adata.obs.columns[:10])})")
        col = adata.obs[batch_key]
        missing = col.isna().to_numpy() | col.astype(str).str.strip().isin(MISSING_BATCH).to_numpy()
        if missing.any():
            raise InputError(path, f"obs column {batch_key!r} (the batch key) has no value for {int(missing.sum())} "
                                   f"of {adata.n_obs} cells (first: {adata.obs_names[missing][0]!r}); fill it in or "
                                   "remove those cells")
        adata.obs["batch"] = col.astype(str).to_numpy()
    if batches:
        present = set(adata.obs["batch"])
        for b in batches:
            if b not in present:
                raise InputError(path, f"batch {b!r} is empty: no cell has {batch_key}={b!r}")
        adata = adata[adata.obs["batch"].isin(batches)].copy()
    adata.obs["batch"] = pd.Categorical(adata.obs["batch"], categories=list(batches) or sorted(set(adata.obs["batch"])))
    return adata


def subsample(adata, n_max, seed):
    """Seeded subsample of at most ``n_max`` cells per batch, original order kept."""
    if n_max <= 0:
        return adata
    rng = np.random.default_rng(seed)
    keep = np.zeros(adata.n_obs, bool)
    for b in adata.obs["batch"].cat.categories:
        idx = np.flatnonzero(adata.obs["batch"].to_numpy() == b)
        keep[rng.choice(idx, size=min(n_max, len(idx)), replace=False)] = True
    return adata[keep].copy()


def read_counts(path, opts):
    """Read the counts of ``path`` (format, CSV orientation, symbol / ID columns, layer) and check that they
    are finite non-negative integers; ``X`` becomes int32 CSR. Gene names are not chosen yet."""
    adata = io.read_counts(path, opts.format, opts.csv_orientation)
    gene_columns(adata, path, opts.symbol_column, opts.id_column)
    counts = io.get_matrix(adata, opts.layer, path)
    io.validate_counts(counts, path, what=opts.layer)
    adata.X = sp.csr_matrix(counts).astype(np.int32)
    return adata


def read_input(path, opts):
    """Read and validate the counts of ``path``: `read_counts`, gene names (`choose_gene_names`), unique
    cell names, then the ``opts.gene_list`` restriction (`restrict_genes`)."""
    adata = read_counts(path, opts)
    choose_gene_names(adata, path, opts.gene_names, opts.make_unique)
    io.validate_names(adata, path)
    LOG.info("read %s: %d cells x %d genes", path, adata.n_obs, adata.n_vars)
    if opts.gene_list:
        adata = restrict_genes(adata, opts.gene_list, path)
    return adata


def restrict_genes(adata, gene_list, path):
    """Keep the genes named in the file ``gene_list`` (exact matches; `scfactor.core.gene_names.match_genes`)."""
    names = io.read_lines(gene_list)
    match = match_genes(names, adata.var_names, what=f"gene list {gene_list}", where=str(path))
    if match.n_found == 0:
        hint = (f" ({match.n_ignoring_case} match ignoring case: fix the case of the list)"
                if match.n_ignoring_case else "")
        raise InputError(gene_list, f"none of its {len(names)} gene names occurs in {path}{hint}")
    LOG.info("gene list %s: %d of its %d names found", gene_list, match.n_found, match.n_wanted)
    return adata[:, match.found].copy()


def read_sheet_samples(sheet_path, opts):
    """Read every sample of a sample sheet (`scfactor.preprocess.sheet`) and join them into one data set.

    When every sample has gene IDs (10x inputs, or ``id_column``), the samples are joined on the IDs and the
    names (``gene_names``, ``make_unique``) are chosen once, on the joined data: samples whose symbols were
    made unique in different ways can then not be paired up wrongly. Otherwise each sample gets its names
    first and the samples are joined on them. Returns the AnnData and the `Sheet`.
    """
    sheet = read_sheet(sheet_path)
    adatas = [read_counts(s.path, opts) for s in sheet.samples]
    by_id = all("gene_id" in a.var for a in adatas)
    for sample, a in zip(sheet.samples, adatas):
        if by_id:
            a.var_names = pd.Index(a.var["gene_id"].astype(str).to_numpy())
            dup = a.var_names[a.var_names.duplicated()]
            if len(dup):
                raise InputError(sample.path, f"{len(dup)} duplicated gene IDs (first: {dup[0]!r})")
        else:
            choose_gene_names(a, sample.path, opts.gene_names, opts.make_unique)
        io.validate_names(a, sample.path)
        LOG.info("read %s (sample %s): %d cells x %d genes", sample.path, sample.name, a.n_obs, a.n_vars)
    adata = join_samples(sheet, adatas)
    if by_id:
        LOG.info("samples joined on their gene IDs")
        choose_gene_names(adata, sheet_path, opts.gene_names, opts.make_unique)
    LOG.info("sample sheet %s: %d samples, %d cells x %d genes", sheet_path, len(sheet.samples),
             adata.n_obs, adata.n_vars)
    if opts.gene_list:
        adata = restrict_genes(adata, opts.gene_list, sheet_path)
    return adata, sheet


def mito_genes(adata, opts, path) -> str:
    """Check that the mitochondrial filter can work on these gene names; returns the var column it uses.

    The filter matches ``opts.mito_pattern`` against ``var['symbol']`` when present, else ``var_names``.
    Names that look like Ensembl IDs with no symbols cannot be matched: an error when ``max_pct_mito`` < 100
    (the filter would silently keep every cell), else a warning (pct_mito is then 0 for every cell).
    """
    column = "symbol" if "symbol" in adata.var else None
    names = np.asarray(adata.var[column].astype(str) if column else adata.var_names)
    try:
        n_mito = int(qc.mito_mask(names, opts.mito_pattern).sum())
    except re.error as exc:
        raise ScfactorError(f"mito_pattern {opts.mito_pattern!r} is not a regular expression ({exc})") from None
    if n_mito:
        LOG.info("mitochondrial genes: %d match %r in %s", n_mito, opts.mito_pattern,
                 "var['symbol']" if column else "the gene names")
        return column
    if looks_like_ids(names):
        problem = (f"the gene names look like Ensembl IDs (e.g. {names[0]!r}) and there is no symbol column, so the "
                   "mitochondrial filter cannot find mitochondrial genes; set symbol_column (--symbol-column, an "
                   ".h5ad var column of symbols) or, for 10x inputs, gene_names: symbols")
        if opts.max_pct_mito < 100:
            raise InputError(path, f"{problem}, or max_pct_mito: 100 to skip the filter")
        LOG.warning("%s: %s; pct_mito is 0 for every cell", path, problem)
    elif opts.max_pct_mito < 100:
        LOG.warning("%s: no gene name matches mito_pattern %r, so max_pct_mito %g removes no cell",
                    path, opts.mito_pattern, opts.max_pct_mito)
    return column


def keep_detected_genes(adata, min_cells, path):
    """Keep genes detected in ``min_cells`` cells of at least one batch; record ``var['n_cells_<batch>']``."""
    batches = adata.obs["batch"].to_numpy()
    detected = {b: np.asarray((adata.X[batches == b] > 0).sum(axis=0)).ravel()
                for b in adata.obs["batch"].cat.categories}
    keep = np.zeros(adata.n_vars, bool)
    for n in detected.values():
        keep |= n >= max(min_cells, 1)
    if not keep.any():
        raise InputError(path, f"no gene is detected in {min_cells} cells of any batch")
    adata = adata[:, keep].copy()
    for b, n in detected.items():
        adata.var[f"n_cells_{b}"] = n[keep].astype(np.int64)
    return adata


def copy_labels(adata, label_key, path) -> None:
    """``obs['label']`` from ``label_key`` (unlabelled markers and missing values become NaN)."""
    if label_key not in adata.obs:
        raise InputError(path, f"has no obs column {label_key!r} for labels")
    lab = adata.obs[label_key].astype("object")
    lab = lab.where(~lab.isin(["unlabelled", "unlabeled", "filtered_out", "", "nan"]) & lab.notna())
    adata.obs["label"] = pd.Categorical(lab)
    LOG.info("labels: %d of %d cells labelled", int(lab.notna().sum()), adata.n_obs)


def normalise(adata, target_sum: float) -> None:
    """Keep raw counts in ``layers['counts']``; ``X = log1p(counts / library size * target_sum)``."""
    counts = sp.csr_matrix(adata.X)  # X is replaced below: the counts layer takes it over, no copy
    x = counts.astype(np.float32)   # the one copy: scaled and logged in place
    x.sum_duplicates()
    lib = np.asarray(x.sum(axis=1, dtype=np.float64)).ravel()
    x.data *= np.repeat((target_sum / np.where(lib > 0, lib, 1.0)).astype(np.float32), np.diff(x.indptr))
    np.log1p(x.data, out=x.data)
    adata.layers["counts"] = counts
    adata.X = x


def preprocess(path, opts, dataset: str | None = None, sheet=None) -> Preprocessed:
    """Run the whole step with options ``opts`` (`scfactor.preprocess.cli.STEP`) on the counts at ``path``,
    or on the samples of the sample sheet ``sheet`` (exactly one of the two)."""
    if (path is None) == (sheet is None):
        raise ValueError("give exactly one of path and sheet")
    source = path if sheet is None else sheet
    dataset = dataset or Path(source).stem
    batch_key = opts.batch_key
    if sheet is None:
        adata = read_input(path, opts)
    else:
        adata, samples = read_sheet_samples(sheet, opts)
        if batch_key is None:
            batch_key = samples.default_batch_key
            LOG.info("batches: the sample sheet's %s column (set batch_key to choose another column)", batch_key)
    batches = opts.batches
    if sheet is not None and not batches and batch_key in adata.obs:  # a sheet's batches in sheet order
        batches = [b for b in dict.fromkeys(adata.obs[batch_key].astype(str)) if b not in MISSING_BATCH]
    adata = split_batches(adata, batch_key, batches, source)
    adata = subsample(adata, opts.max_cells_per_batch, opts.seed)

    symbol_column = mito_genes(adata, opts, source)
    names = adata.var[symbol_column].astype(str) if symbol_column else adata.var_names
    metrics = qc.cell_metrics(adata.X, names, opts.mito_pattern)
    metrics.index = adata.obs_names
    kept = qc.cell_filter(metrics, opts.min_genes, opts.min_counts, opts.max_pct_mito)
    summary = qc.qc_summary(metrics, adata.obs["batch"], kept)
    empty = summary.loc[summary["cells_kept"] == 0, "batch"]
    if len(empty):
        raise InputError(source, f"batch {empty.iloc[0]!r} has no cells left after QC filtering")
    fig = qc_figure(metrics, adata.obs["batch"], kept, dataset)

    adata = adata[kept].copy()
    for col in metrics.columns:
        adata.obs[col] = metrics.loc[kept, col].to_numpy()
    adata = keep_detected_genes(adata, opts.min_cells, source)
    if opts.label_key:
        copy_labels(adata, opts.label_key, source)
    normalise(adata, opts.target_sum)
    adata.var["liger_selected"] = genes.liger_select_union(
        adata.layers["counts"], adata.obs["batch"].to_numpy(), opts.liger_var_thresh, opts.liger_alpha_thresh)
    adata.var["highly_variable"] = genes.hvg_select(adata, opts.n_hvg)
    LOG.info("genes: %d kept, %d LIGER-selected, %d highly variable", adata.n_vars,
             int(adata.var["liger_selected"].sum()), int(adata.var["highly_variable"].sum()))
    adata.uns["preprocess"] = {
        "dataset": dataset, "input": str(source), "seed": opts.seed, "batch_key": str(batch_key),
        "batches": list(map(str, adata.obs["batch"].cat.categories)),
        "params": {k: v for k, v in asdict(opts).items() if v is not None and not isinstance(v, (list, tuple))},
    }
    if sheet is not None:
        adata.uns["preprocess"]["samples"] = [s.name for s in samples.samples]
    return Preprocessed(adata, summary, fig)
