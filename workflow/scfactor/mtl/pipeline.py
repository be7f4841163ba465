"""The MTL steps' logic: load inputs, call the model / baseline / simulator, build the output objects.

One function per script of `scfactor.mtl.cli` (the shard's, which imports no pandas, is in `scfactor.mtl.shard`);
none chooses a file name (the layout's own names come
from `scfactor.mtl.layout`) and none writes: the CLI writes what they return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import io
from ..core.errors import InputError
from ..core.log import LOG
from . import baseline
from . import layout as L
from .shard import ABLATION, MODELS, REFERENCE  # noqa: F401  (the models' names, used by smk and plots)
SHARD_COLUMNS = ["tissue", "gene", "cluster", "rep", "model", "lambda", "r2"]
LASSO_COLUMNS = ["tissue", "gene_ensembl", "rep", "r2"]
R2_COLUMNS = ["tissue", "gene", "cluster", "rep", "model", "r2", "lasso_r2"]


# --------------------------------------------------------------------------- real-data layout
@dataclass
class VelocityLayout:
    """What `velocity` derives from an .h5ad: the hdf5 groups per tissue and the id table."""

    rpkm: dict          # sanitised tissue -> (CPM cells x genes, barcodes, genes)
    velo: dict          # sanitised tissue -> (velocity cells x velocity genes, barcodes, velocity genes)
    e2s: pd.DataFrame   # ensembl_id, gene_symbol (identity: the set has symbols only)


def velocity(path, opts) -> VelocityLayout:
    """Steady-state velocity and CPM expression per tissue of a spliced/unspliced .h5ad (`cli.VELOCITY` options).

    Tissues are the values of ``opts.tissue_key`` (``opts.tissues`` of them when given; no key: one
    tissue ``all``, ``opts.tissues`` unused), each subsampled to ``opts.max_cells_per_tissue`` cells.
    """
    from .velocity import dense, steady_state_velocity
    adata = io.read_h5ad(path)
    io.validate_names(adata, path)
    for layer in ("spliced", "unspliced"):
        io.validate_counts(io.get_matrix(adata, layer, path), path, what=layer, integer=False)
    if opts.tissue_key is None:
        tissue = pd.Series("all", index=adata.obs_names)
    else:
        if opts.tissue_key not in adata.obs:
            raise InputError(path, f"has no obs column {opts.tissue_key!r} (columns: {', '.join(adata.obs.columns)})")
        tissue = adata.obs[opts.tissue_key].astype(str)
    wanted = list(opts.tissues) if opts.tissue_key is not None and opts.tissues else sorted(tissue.unique())
    missing = [t for t in wanted if t not in set(tissue)]
    if missing:
        raise InputError(path, f"tissue {missing[0]!r} has no cells in obs[{opts.tissue_key!r}] "
                               f"(values: {', '.join(sorted(tissue.unique()))})")
    names = {t: L.sanitize_tissue(t) for t in wanted}
    rng = np.random.default_rng(opts.seed)
    keep = []
    for t in wanted:
        idx = np.where(tissue.to_numpy() == t)[0]
        if opts.max_cells_per_tissue and len(idx) > opts.max_cells_per_tissue:
            idx = np.sort(rng.choice(idx, size=opts.max_cells_per_tissue, replace=False))
        keep.append(idx)
    idx = np.concatenate(keep)
    ad = adata[idx]
    s, u = dense(ad.layers["spliced"]), dense(ad.layers["unspliced"])
    velo, gamma, gmask = steady_state_velocity(s, u, min_shared_counts=opts.min_shared_counts,
                                               n_neighbors=opts.n_neighbors, n_pcs=opts.n_pcs,
                                               perc=opts.perc, seed=opts.seed, path=path)
    tot = s + u
    cpm = tot / np.where(tot.sum(1, keepdims=True) > 0, tot.sum(1, keepdims=True), 1.0) * 1e6
    genes = np.asarray(ad.var_names)
    vgenes = genes[gmask]
    cell_t = tissue.to_numpy()[idx]
    barcodes = np.asarray(ad.obs_names)
    rpkm, vel = {}, {}
    for t in wanted:
        sel = cell_t == t
        rpkm[names[t]] = (cpm[sel], barcodes[sel], genes)
        vel[names[t]] = (velo[sel], barcodes[sel], vgenes)
        LOG.info("tissue %s -> %s: %d cells, %d velocity genes, %.1f%% missing", t, names[t], sel.sum(),
                 len(vgenes), 100 * np.isnan(velo[sel]).mean())
    LOG.info("gamma: median %.3f over %d genes", float(np.median(gamma)), len(gamma))
    return VelocityLayout(rpkm, vel, pd.DataFrame({"ensembl_id": genes, "gene_symbol": genes}))


def tf_activity(root, opts):
    """Per tissue of the layout at ``root``: (mean, sum) TF x gene activity tables, and the TFs used.

    ``opts``: `cli.TF_ACTIVITY` options (``prior``, ``tf_list``, ``orthologs``, ``species``,
    ``confidence``). The tissues are the groups of ``rpkm.hdf5``.
    """
    from pathlib import Path

    from .velocity import mouse_tf_symbols, prior_activity
    root = Path(root)
    prior = io.read_table(opts.prior)
    io.require_columns(prior, ["tf", "confidence", "target", "mor"], opts.prior, "prior")
    census = io.read_lines(opts.tf_list)
    if opts.species == "mouse":
        if not opts.orthologs:
            raise InputError(opts.tf_list, "a human TF list needs --orthologs to map to mouse")
        orth = io.read_table(opts.orthologs, header=None, dtype=str)
        if orth.shape[1] < 2:
            raise InputError(opts.orthologs, "needs two columns: human symbol, mouse symbol")
        tfs = mouse_tf_symbols(census, orth.iloc[:, :2])
    else:
        tfs = set(census)
    tables = {}
    tf_cols = set()
    for t in L.hdf5_tissues(root / L.RPKM):
        vgenes = L.hdf5_genes(root / L.VELO, t, "velo")
        present = [g for g in L.hdf5_genes(root / L.RPKM, t, "exp") if g in tfs]
        if not present:
            raise InputError(opts.tf_list, f"none of its TFs is an expression column of tissue {t!r}")
        tf_cols |= set(present)
        expr, _, _ = L.read_hdf5_matrix(root / L.RPKM, t, "exp", genes=present)
        cpm = pd.Series(expr.mean(0), index=present)
        mean, summ = prior_activity(prior, present, vgenes, cpm, tuple(opts.confidence))
        if mean.shape[0] == 0:
            raise InputError(opts.prior, f"no edge from an expressed TF to a velocity gene of tissue {t!r}")
        tables[t] = (mean, summ)
        LOG.info("tissue %s: %d TFs expressed, %d with prior targets, %d edges", t, len(present),
                 mean.shape[0], int((mean.to_numpy() != 0).sum()))
    return tables, sorted(tf_cols)


# --------------------------------------------------------------------------- baseline, genes, clusters
def lasso(root, tissue: str, opts, threads: int) -> pd.DataFrame:
    """The lasso table of one tissue (`cli.LASSO` options): candidate genes, optional seeded subset, LassoCV."""
    data = L.load_tissue(root, tissue)
    genes = baseline.candidate_genes(data, opts.min_cells)
    if len(genes) == 0:
        raise InputError(data.files["velo"], f"tissue {tissue!r}: no gene has velocity in >= "
                                             f"{opts.min_cells} cells and an activity column")
    if opts.max_genes and len(genes) > opts.max_genes:
        rng = np.random.default_rng(opts.seed)
        genes = genes[np.sort(rng.choice(len(genes), size=opts.max_genes, replace=False))]
    LOG.info("lasso on %d genes x %d reps, %d TFs, %d threads", len(genes), opts.reps, data.expr.shape[1], threads)
    df = baseline.run_lasso(data, genes, list(range(opts.reps)), test_ratio=opts.test_ratio, seed=opts.seed,
                            cv=opts.cv, n_alphas=opts.n_alphas, max_iter=opts.max_iter, threads=threads)
    LOG.info("median test R2 %.3f", float(df["r2"].median()))
    return df


def select_genes(root, tissue: str, lasso_path, opts) -> pd.DataFrame:
    """genes.tsv of one tissue (`cli.SELECT_GENES` options): lasso genes with enough velocity, seeded subset."""
    table = io.read_table(lasso_path, dtype={"gene_ensembl": str, "tissue": str})
    io.require_columns(table, ["tissue", "gene_ensembl"], lasso_path, "lasso table")
    data = L.load_tissue(root, tissue)
    genes = baseline.select_genes(data, table, opts.min_cells, opts.num_genes, opts.seed, path=lasso_path)
    LOG.info("tissue %s: %d genes selected", tissue, len(genes))
    return pd.DataFrame({"gene_ensembl": genes})


def gene_clusters(root, tissue: str, genes_path, opts) -> pd.DataFrame:
    """clusters.tsv of one tissue (`cli.GENE_CLUSTERS` options): balanced KMeansConstrained labels."""
    sel = io.read_table(genes_path, dtype=str)
    io.require_columns(sel, ["gene_ensembl"], genes_path, "gene list")
    genes = sel["gene_ensembl"].to_numpy()
    if len(genes) == 0:
        raise InputError(genes_path, "lists no gene")
    data = L.load_tissue(root, tissue, genes=genes)
    labels = baseline.cluster_genes(data.velo, opts.n_clusters, opts.seed, path=genes_path)
    df = pd.DataFrame({"gene_ensembl": genes, "cluster": labels})
    LOG.info("tissue %s: %d genes in %d clusters (sizes %s)", tissue, len(genes), opts.n_clusters,
             ", ".join(map(str, df["cluster"].value_counts().sort_index().tolist())))
    return df


# --------------------------------------------------------------------------- aggregate
def read_shards(paths) -> list[pd.DataFrame]:
    """The shard tables, each checked for the columns `aggregate` needs."""
    tables = [io.read_table(p, sep="\t", dtype={"gene": str, "tissue": str}) for p in paths]
    for p, df in zip(paths, tables):
        io.require_columns(df, SHARD_COLUMNS, p, "shard table")
    return tables


def read_lasso(paths) -> list[pd.DataFrame]:
    """The lasso tables (one per tissue), each checked for the columns `aggregate` needs."""
    tables = [io.read_table(p, dtype={"gene_ensembl": str, "tissue": str}) for p in paths]
    for p, df in zip(paths, tables):
        io.require_columns(df, LASSO_COLUMNS, p, "lasso table")
    return tables


def read_r2(path) -> pd.DataFrame:
    """The aggregated R2 table (r2.tsv), checked for the figures' columns and not empty."""
    r2 = io.read_table(path, sep="\t", dtype={"gene": str, "tissue": str})
    io.require_columns(r2, R2_COLUMNS, path, "R2 table")
    if r2.empty:
        raise InputError(path, "R2 table is empty")
    return r2


def aggregate(shards, lasso):
    """(r2 table with the lasso R2 of the same gene and split, per-tissue/model summary)."""
    table = pd.concat(shards, ignore_index=True)
    las = pd.concat(lasso, ignore_index=True).rename(columns={"gene_ensembl": "gene", "r2": "lasso_r2"})
    las = las[["tissue", "gene", "rep", "lasso_r2"]].drop_duplicates(["tissue", "gene", "rep"])
    table = table.merge(las, on=["tissue", "gene", "rep"], how="left")
    table = table.sort_values(["tissue", "model", "cluster", "rep", "gene"], kind="mergesort").reset_index(drop=True)
    per_gene = table.groupby(["tissue", "model", "gene"], sort=True)[["r2", "lasso_r2"]].mean().reset_index()
    rows = []
    for (tissue, model), df in per_gene.groupby(["tissue", "model"], sort=True):
        row = dict(tissue=tissue, model=model, genes=len(df), mean_r2=df["r2"].mean(), median_r2=df["r2"].median(),
                   mean_lasso_r2=df["lasso_r2"].mean(),
                   frac_above_lasso=float((df["r2"] > df["lasso_r2"]).mean()),
                   mean_gain_vs_lambda0=np.nan)
        if model != ABLATION:
            ab = per_gene[(per_gene["tissue"] == tissue) & (per_gene["model"] == ABLATION)]
            if len(ab):
                m = df.merge(ab, on="gene", suffixes=("", "_ab"))
                row["mean_gain_vs_lambda0"] = float((m["r2"] - m["r2_ab"]).mean())
        rows.append(row)
    summary = pd.DataFrame(rows).round(6)
    return table, summary


