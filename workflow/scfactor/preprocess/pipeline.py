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
from . import counts as blocks
from . import genes, qc
from .counts import Counts
from .layer_hint import suggest_count_matrices
from .plots import qc_figure
from .sheet import join_samples, read_sheet


@dataclass
class Preprocessed:
    """The outputs of one data set: the AnnData without its matrices (``X`` None), the per-batch QC table, the
    QC figure, and the `Counts` with the target sum that give ``layers['counts']`` and ``X`` block by block
    (`scfactor.preprocess.write.write_preprocessed`)."""

    adata: object
    qc_table: pd.DataFrame
    figure: object
    counts: Counts
    target_sum: float


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
    with suggest_count_matrices(path, opts.layer):
        io.validate_counts(counts, path, what=opts.layer)
    adata.X = sp.csr_matrix(counts).astype(np.int32)
    return adata


def open_counts(path, opts):
    """The AnnData of ``path`` without its counts (``X`` None) and its `Counts`, validated like `read_counts`:
    an ``.h5ad`` is read block by block from the file where it can be (`scfactor.preprocess.counts.open_h5ad`),
    anything else whole."""
    fmt = io.detect_format(io.require_file(path)) if opts.format == "auto" else opts.format
    opened = blocks.open_h5ad(path, opts.layer) if fmt == "h5ad" else None
    if opened is None:
        return detach_counts(read_counts(path, opts))
    adata, counts = opened
    LOG.info("%s: counts read from the file in blocks of %d cells", path, blocks.CHUNK_CELLS)
    gene_columns(adata, path, opts.symbol_column, opts.id_column)
    with suggest_count_matrices(path, opts.layer):
        blocks.validate_blocks(counts, path, opts.layer)
    return adata, counts


def detach_counts(adata):
    """Move the int32 counts ``adata.X`` into a `Counts`; the AnnData keeps everything else (``X`` None,
    without a stored ``layers['counts']``, which the output replaces)."""
    counts = Counts.in_memory(adata)
    adata.X = None
    adata.layers.pop("counts", None)
    return adata, counts


def read_input(path, opts):
    """Read and validate the counts of ``path`` (`open_counts`), gene names (`choose_gene_names`), unique
    cell names, then the ``opts.gene_list`` restriction (`restrict_genes`). Returns the AnnData (``X`` None)
    and its `Counts`."""
    adata, counts = open_counts(path, opts)
    choose_gene_names(adata, path, opts.gene_names, opts.make_unique)
    io.validate_names(adata, path, cell_hint=io.JOINED_SAMPLES_HINT)
    counts.var_names = adata.var_names
    LOG.info("read %s: %d cells x %d genes", path, adata.n_obs, adata.n_vars)
    if opts.gene_list:
        adata = restrict_genes(adata, opts.gene_list, path)
    return adata, counts


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


def keep_detected_genes(adata, counts: Counts, min_cells, path):
    """Keep genes detected in ``min_cells`` cells of at least one batch; record ``var['n_cells_<batch>']``."""
    rows, cols = counts.positions(adata)
    batches = adata.obs["batch"].to_numpy()
    detected = {b: np.zeros(adata.n_vars, np.int64) for b in adata.obs["batch"].cat.categories}
    for where, x in counts.blocks(rows, cols):
        for b, n in detected.items():
            n += np.asarray((x[batches[where] == b] > 0).sum(axis=0)).ravel()
    keep = np.zeros(adata.n_vars, bool)
    for n in detected.values():
        keep |= n >= max(min_cells, 1)
    if not keep.any():
        raise InputError(path, f"no gene is detected in {min_cells} cells of any batch")
    adata = adata[:, keep].copy()
    for b, n in detected.items():
        adata.var[f"n_cells_{b}"] = n[keep].astype(np.int64)
    return adata


def check_depth(summary: pd.DataFrame, opts, source) -> None:
    """`InputError` when a batch's kept cells look like an unfiltered droplet matrix (`qc.low_depth_batches`,
    ``opts.min_median_counts``); not checked with a ``gene_list``, whose totals are not library sizes."""
    low = qc.low_depth_batches(summary, 0 if opts.gene_list else opts.min_median_counts)
    if len(low):
        row = low.iloc[0]
        raise InputError(source, f"batch {row['batch']!r} keeps {int(row['cells_kept'])} cells with a median of "
                                 f"{row['median_counts']:g} counts (min_median_counts {opts.min_median_counts}): "
                                 "this looks like an unfiltered droplet matrix (e.g. Cell Ranger's "
                                 "raw_feature_bc_matrix); use the filtered matrix, raise min_counts / min_genes, "
                                 "or set min_median_counts: 0")


def cell_metrics(adata, counts: Counts, names, mito_pattern) -> pd.DataFrame:
    """`scfactor.preprocess.qc.cell_metrics` of the cells of ``adata``, block by block."""
    rows, cols = counts.positions(adata)
    parts = [qc.cell_metrics(x, names, mito_pattern) for _, x in counts.blocks(rows, cols)]
    metrics = pd.concat(parts, ignore_index=True)
    metrics.index = adata.obs_names
    return metrics


def select_genes(adata, counts: Counts, opts) -> None:
    """``var['liger_selected']`` and ``var['highly_variable']`` from one pass over the blocks of kept cells:
    the LIGER statistics of the counts and scanpy's seurat statistics of ``X`` per batch (`scfactor.preprocess.genes`)."""
    rows, cols = counts.positions(adata)
    batches = adata.obs["batch"].to_numpy()
    names = adata.obs["batch"].cat.categories
    liger = {b: genes.LigerMoments(adata.n_vars) for b in names}
    seurat = {b: genes.SeuratMoments(adata.n_vars) for b in names}
    for where, x in counts.blocks(rows, cols):
        norm = normalise_counts(x, opts.target_sum)
        for b in names:
            in_b = batches[where] == b
            if in_b.any():
                liger[b].add(x[in_b])
                seurat[b].add(norm[in_b])
    adata.var["liger_selected"] = genes.liger_union(liger, opts.liger_var_thresh, opts.liger_alpha_thresh)
    adata.var["highly_variable"] = genes.seurat_hvg(seurat, adata.var_names, opts.n_hvg)


def copy_labels(adata, label_key, path) -> None:
    """``obs['label']`` from ``label_key`` (unlabelled markers and missing values become NaN)."""
    if label_key not in adata.obs:
        raise InputError(path, f"has no obs column {label_key!r} for labels")
    lab = adata.obs[label_key].astype("object")
    lab = lab.where(~lab.isin(["unlabelled", "unlabeled", "filtered_out", "", "nan"]) & lab.notna())
    adata.obs["label"] = pd.Categorical(lab)
    LOG.info("labels: %d of %d cells labelled", int(lab.notna().sum()), adata.n_obs)


def normalise_counts(counts, target_sum: float):
    """``log1p(counts / library size * target_sum)`` as float32 CSR (duplicates summed): one copy of the
    counts, scaled and logged in place; row by row, so a block of cells gives the rows of the whole."""
    x = sp.csr_matrix(counts).astype(np.float32)
    x.sum_duplicates()
    lib = np.asarray(x.sum(axis=1, dtype=np.float64)).ravel()
    x.data *= np.repeat((target_sum / np.where(lib > 0, lib, 1.0)).astype(np.float32), np.diff(x.indptr))
    np.log1p(x.data, out=x.data)
    return x


def preprocess(path, opts, dataset: str | None = None, sheet=None) -> Preprocessed:
    """Run the whole step with options ``opts`` (`scfactor.preprocess.cli.STEP`) on the counts at ``path``,
    or on the samples of the sample sheet ``sheet`` (exactly one of the two)."""
    if (path is None) == (sheet is None):
        raise ValueError("give exactly one of path and sheet")
    source = path if sheet is None else sheet
    dataset = dataset or Path(source).stem
    batch_key = opts.batch_key
    if sheet is None:
        adata, counts = read_input(path, opts)
    else:
        adata, samples = read_sheet_samples(sheet, opts)
        adata, counts = detach_counts(adata)
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
    metrics = cell_metrics(adata, counts, names, opts.mito_pattern)
    kept = qc.cell_filter(metrics, opts.min_genes, opts.min_counts, opts.max_pct_mito)
    summary = qc.qc_summary(metrics, adata.obs["batch"], kept)
    empty = summary.loc[summary["cells_kept"] == 0, "batch"]
    if len(empty):
        raise InputError(source, f"batch {empty.iloc[0]!r} has no cells left after QC filtering")
    check_depth(summary, opts, source)
    fig = qc_figure(metrics, adata.obs["batch"], kept, dataset)

    adata = adata[kept].copy()
    for col in metrics.columns:
        adata.obs[col] = metrics.loc[kept, col].to_numpy()
    adata = keep_detected_genes(adata, counts, opts.min_cells, source)
    if opts.label_key:
        copy_labels(adata, opts.label_key, source)
    select_genes(adata, counts, opts)
    LOG.info("genes: %d kept, %d LIGER-selected, %d highly variable", adata.n_vars,
             int(adata.var["liger_selected"].sum()), int(adata.var["highly_variable"].sum()))
    adata.uns["preprocess"] = {
        "dataset": dataset, "input": str(source), "seed": opts.seed, "batch_key": str(batch_key),
        "batches": list(map(str, adata.obs["batch"].cat.categories)),
        "params": {k: v for k, v in asdict(opts).items() if v is not None and not isinstance(v, (list, tuple))},
    }
    if sheet is not None:
        adata.uns["preprocess"]["samples"] = [s.name for s in samples.samples]
    return Preprocessed(adata, summary, fig, counts, opts.target_sum)
