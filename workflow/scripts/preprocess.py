#!/usr/bin/env python
"""Preprocess a count matrix: read, split by batch, QC-filter, normalise, flag selected genes.

Output contract (``.h5ad``): ``layers['counts']`` raw int32 counts, ``X`` = log1p of counts scaled
to ``target_sum`` per cell, ``obs['batch']`` (categorical), ``obs['label']`` when a label key is
given, QC columns ``n_counts``/``n_genes``/``pct_mito``, ``var['liger_selected']`` (LIGER
variance threshold, union over batches), ``var['highly_variable']`` (scanpy), ``var['n_cells_<batch>']``
and parameters in ``uns['preprocess']``. Other input layers (e.g. spliced/unspliced) are kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from scfactor import cli, genes, io, qc  # noqa: E402
from scfactor.errors import InputError  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="counts: .h5ad, 10x folder, 10x .h5, wide .csv, neuralNMF .h5")
    p.add_argument("--format", default="auto", choices=io.COUNT_FORMATS)
    p.add_argument("--layer", default="X", help="input layer holding raw counts")
    p.add_argument("--dataset", default=None, help="dataset name recorded in uns")
    p.add_argument("--batch-key", default=None, help="obs column that splits batches (none: one batch 'all')")
    p.add_argument("--batches", nargs="*", default=None, help="batches to keep (default: all values)")
    p.add_argument("--label-key", default=None, help="obs column with cell labels, copied to obs['label']")
    p.add_argument("--gene-list", default=None, help="restrict to the genes named in this file")
    p.add_argument("--max-cells-per-batch", type=int, default=0, help="seeded subsample per batch (0 = all)")
    p.add_argument("--min-genes", type=int, default=0)
    p.add_argument("--min-counts", type=int, default=1)
    p.add_argument("--min-cells", type=int, default=1, help="keep genes detected in this many cells of some batch")
    p.add_argument("--max-pct-mito", type=float, default=100.0)
    p.add_argument("--mito-pattern", default=r"^(MT|mt|Mt)-")
    p.add_argument("--target-sum", type=float, default=1e4)
    p.add_argument("--liger-var-thresh", type=float, default=0.1)
    p.add_argument("--liger-alpha-thresh", type=float, default=0.99)
    p.add_argument("--n-hvg", type=int, default=2000)
    p.add_argument("--output", required=True, help="preprocessed .h5ad")
    p.add_argument("--qc-table", required=True, help="per-batch QC summary .tsv")
    p.add_argument("--qc-figure", required=True, help="QC figure (.png/.pdf)")
    return p


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
    adata.obs["batch"] = pd.Categorical(adata.obs["batch"], categories=batches or sorted(set(adata.obs["batch"])))
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    log = cli.LOG
    path = args.input
    adata = io.read_counts(path, args.format)
    io.validate_names(adata, path)
    counts = io.get_matrix(adata, args.layer, path)
    io.validate_counts(counts, path, what=args.layer)
    adata.X = sp.csr_matrix(counts).astype(np.int32)
    log.info("read %s: %d cells x %d genes", path, adata.n_obs, adata.n_vars)

    if args.gene_list:
        names = io.read_lines(args.gene_list)
        present = adata.var_names.intersection(names)
        if len(present) == 0:
            raise InputError(args.gene_list, f"none of its {len(names)} gene names occurs in {path}")
        adata = adata[:, present].copy()

    adata = split_batches(adata, args.batch_key, args.batches, path)
    adata = subsample(adata, args.max_cells_per_batch, args.seed)

    metrics = qc.cell_metrics(adata.X, adata.var_names, args.mito_pattern)
    metrics.index = adata.obs_names
    kept = qc.cell_filter(metrics, args.min_genes, args.min_counts, args.max_pct_mito)
    summary = qc.qc_summary(metrics, adata.obs["batch"], kept)
    empty = summary.loc[summary["cells_kept"] == 0, "batch"]
    if len(empty):
        raise InputError(path, f"batch {empty.iloc[0]!r} has no cells left after QC filtering")
    fig = qc.qc_figure(metrics, adata.obs["batch"], kept, args.dataset or Path(path).stem)

    adata = adata[kept].copy()
    for col in metrics.columns:
        adata.obs[col] = metrics.loc[kept, col].to_numpy()
    # genes: detected in >= min_cells cells of at least one batch (LIGER drops all-zero genes per batch)
    batches = adata.obs["batch"].to_numpy()
    detected = {}
    for b in adata.obs["batch"].cat.categories:
        xb = adata.X[batches == b]
        detected[b] = np.asarray((xb > 0).sum(axis=0)).ravel()
    keep_genes = np.zeros(adata.n_vars, bool)
    for b, n in detected.items():
        keep_genes |= n >= max(args.min_cells, 1)
    if not keep_genes.any():
        raise InputError(path, f"no gene is detected in {args.min_cells} cells of any batch")
    adata = adata[:, keep_genes].copy()
    for b, n in detected.items():
        adata.var[f"n_cells_{b}"] = n[keep_genes].astype(np.int64)

    if args.label_key:
        if args.label_key not in adata.obs:
            raise InputError(path, f"has no obs column {args.label_key!r} for labels")
        lab = adata.obs[args.label_key].astype("object")
        lab = lab.where(~lab.isin(["unlabelled", "unlabeled", "filtered_out", "", "nan"]) & lab.notna())
        adata.obs["label"] = pd.Categorical(lab)
        log.info("labels: %d of %d cells labelled", int(lab.notna().sum()), adata.n_obs)

    adata.layers["counts"] = adata.X.copy()
    x = adata.X.astype(np.float32)
    lib = np.asarray(x.sum(axis=1)).ravel()
    x = sp.diags((args.target_sum / lib).astype(np.float32)) @ x
    x.data = np.log1p(x.data)
    adata.X = sp.csr_matrix(x, dtype=np.float32)

    adata.var["liger_selected"] = genes.liger_select_union(
        adata.layers["counts"], batches, args.liger_var_thresh, args.liger_alpha_thresh)
    adata.var["highly_variable"] = genes.hvg_select(adata, args.n_hvg)
    log.info("genes: %d kept, %d LIGER-selected, %d highly variable", adata.n_vars,
             int(adata.var["liger_selected"].sum()), int(adata.var["highly_variable"].sum()))
    adata.uns["preprocess"] = {
        "dataset": args.dataset or Path(path).stem, "input": str(path), "seed": args.seed,
        "batches": list(map(str, adata.obs["batch"].cat.categories)),
        "params": {k: v for k, v in vars(args).items() if v is not None and not isinstance(v, list)
                   and k not in ("output", "qc_table", "qc_figure", "input")},
    }
    io.write_table(summary, args.qc_table)
    io.save_figure(fig, args.qc_figure)
    io.write_h5ad(adata, args.output)
    log.info("wrote %s (%d cells x %d genes)", args.output, adata.n_obs, adata.n_vars)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
