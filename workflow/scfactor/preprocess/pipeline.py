"""The preprocess step: counts in, the preprocessed AnnData (see `contract`), QC table and figure out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core import io
from ..core.errors import InputError
from ..core.log import LOG
from . import genes, qc
from .plots import qc_figure


@dataclass
class Preprocessed:
    """The outputs of one data set: the AnnData, the per-batch QC table and the QC figure."""

    adata: object
    qc_table: pd.DataFrame
    figure: object


def split_batches(adata, batch_key, batches, path):
    """Set ``obs['batch']`` from ``batch_key`` and keep the requested batches (each non-empty)."""
    if batch_key is None:
        adata.obs["batch"] = "all"
    else:
        if batch_key not in adata.obs:
            raise InputError(path, f"has no obs column {batch_key!r} to split batches "
                                   f"(columns: {', '.join(adata.obs.columns[:10])})")
        adata.obs["batch"] = adata.obs[batch_key].astype(str)
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


def read_input(path, opts):
    """Read and validate the counts of ``path`` (format, layer, names, integer counts)."""
    adata = io.read_counts(path, opts.format)
    io.validate_names(adata, path)
    counts = io.get_matrix(adata, opts.layer, path)
    io.validate_counts(counts, path, what=opts.layer)
    adata.X = sp.csr_matrix(counts).astype(np.int32)
    LOG.info("read %s: %d cells x %d genes", path, adata.n_obs, adata.n_vars)
    if opts.gene_list:
        names = io.read_lines(opts.gene_list)
        present = adata.var_names.intersection(names)
        if len(present) == 0:
            raise InputError(opts.gene_list, f"none of its {len(names)} gene names occurs in {path}")
        adata = adata[:, present].copy()
    return adata


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
    adata.layers["counts"] = adata.X.copy()
    x = adata.X.astype(np.float32)
    lib = np.asarray(x.sum(axis=1)).ravel()
    x = sp.diags((target_sum / lib).astype(np.float32)) @ x
    x.data = np.log1p(x.data)
    adata.X = sp.csr_matrix(x, dtype=np.float32)


def preprocess(path, opts, dataset: str | None = None) -> Preprocessed:
    """Run the whole step on the counts at ``path`` with options ``opts`` (`scfactor.preprocess.cli.STEP`)."""
    dataset = dataset or Path(path).stem
    adata = read_input(path, opts)
    adata = split_batches(adata, opts.batch_key, opts.batches, path)
    adata = subsample(adata, opts.max_cells_per_batch, opts.seed)

    metrics = qc.cell_metrics(adata.X, adata.var_names, opts.mito_pattern)
    metrics.index = adata.obs_names
    kept = qc.cell_filter(metrics, opts.min_genes, opts.min_counts, opts.max_pct_mito)
    summary = qc.qc_summary(metrics, adata.obs["batch"], kept)
    empty = summary.loc[summary["cells_kept"] == 0, "batch"]
    if len(empty):
        raise InputError(path, f"batch {empty.iloc[0]!r} has no cells left after QC filtering")
    fig = qc_figure(metrics, adata.obs["batch"], kept, dataset)

    adata = adata[kept].copy()
    for col in metrics.columns:
        adata.obs[col] = metrics.loc[kept, col].to_numpy()
    adata = keep_detected_genes(adata, opts.min_cells, path)
    if opts.label_key:
        copy_labels(adata, opts.label_key, path)
    normalise(adata, opts.target_sum)
    adata.var["liger_selected"] = genes.liger_select_union(
        adata.layers["counts"], adata.obs["batch"].to_numpy(), opts.liger_var_thresh, opts.liger_alpha_thresh)
    adata.var["highly_variable"] = genes.hvg_select(adata, opts.n_hvg)
    LOG.info("genes: %d kept, %d LIGER-selected, %d highly variable", adata.n_vars,
             int(adata.var["liger_selected"].sum()), int(adata.var["highly_variable"].sum()))
    adata.uns["preprocess"] = {
        "dataset": dataset, "input": str(path), "seed": opts.seed,
        "batches": list(map(str, adata.obs["batch"].cat.categories)),
        "params": {k: v for k, v in asdict(opts).items() if v is not None and not isinstance(v, (list, tuple))},
    }
    return Preprocessed(adata, summary, fig)
