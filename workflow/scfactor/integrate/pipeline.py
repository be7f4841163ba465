"""The integrate step: load batches (raw counts or NeuMF layers), LIGER preprocessing, iNMF (batch
or online), quantile normalisation, Leiden, UMAP and metrics, stored as one AnnData.

Inputs
* ``counts``: one preprocessed ``.h5ad`` (`scfactor.preprocess.contract`: ``layers['counts']``,
  ``obs['batch']``, gene flags); library sizes over all genes, then the ``genes`` set.
* ``neumf``: one ``.h5ad`` per batch with ``layers['neumf']`` (dense, counts scale), ``obs['batch']``;
  the genes used are those present in every file (in the first file's order).

Every function takes the step's options object (`scfactor.integrate.cli.INTEGRATE`, fields and defaults
from ``workflow/schemas/integrate.schema.yaml``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core import io, metrics
from ..core.errors import InputError, ScfactorError
from ..core.log import LOG
from ..preprocess import contract
from . import model, restarts

#: the input layer of each source when ``layer`` is null
DEFAULT_LAYER = {"counts": "counts", "neumf": "neumf"}


@dataclasses.dataclass
class Batches:
    """Per-batch matrices (cells x genes, raw scale) with their cell table and gene names."""
    mats: list
    names: list
    obs: pd.DataFrame          # all cells in batch order: index = cell names, columns batch (+ the label column)
    genes: pd.Index
    path: str


def run(source: str, inputs: Sequence, opts, device):
    """The whole step for ``source`` (counts | neumf) and its input file(s); returns (AnnData, metrics)."""
    layer = opts.layer or DEFAULT_LAYER[source]
    opts = dataclasses.replace(opts, mode=resolve_mode(source, inputs, opts))
    if source == "counts":
        if len(inputs) != 1:
            raise ScfactorError(f"--source counts takes one preprocessed .h5ad, got {len(inputs)}")
        if opts.mode == "online":
            adata, table = integrate_online(inputs[0], opts, layer=layer, device=device, source=source)
        else:
            b = load_counts(inputs[0], opts.batches, layer=layer, genes=opts.genes, label_key=opts.label_key)
            adata, table = integrate(b, opts, device=device, source=source)
    else:
        if opts.mode == "online":
            raise ScfactorError("--mode online streams one backed counts .h5ad; use --mode batch for neumf")
        b = load_neumf(inputs, layer=layer, label_key=opts.label_key)
        adata, table = integrate(b, opts, device=device, source=source)
    adata.uns["inmf"]["mode"] = opts.mode
    adata.uns["inmf"]["device"] = str(device)
    return adata, table


def resolve_mode(source: str, inputs: Sequence, opts) -> str:
    """``opts.mode``, with ``auto`` resolved: batch for the neumf source and for a counts file of at most
    ``opts.batch_max_cells`` cells (counted from its ``obs`` alone), online above."""
    if opts.mode != "auto":
        return opts.mode
    n = io.h5ad_n_obs(inputs[0]) if source == "counts" and len(inputs) == 1 else None
    mode = "online" if n is not None and n > opts.batch_max_cells else "batch"
    if n is not None:
        LOG.info("mode auto: %s mode for %d cells (batch_max_cells %d)", mode, n, opts.batch_max_cells)
    return mode


def _present_batches(obs: pd.DataFrame) -> list[str]:
    """Batches present in ``obs['batch']``, in category order when categorical, else in order of appearance."""
    present = list(obs["batch"].astype(str).unique())
    if isinstance(obs["batch"].dtype, pd.CategoricalDtype):
        seen = set(present)
        present = [str(c) for c in obs["batch"].cat.categories if str(c) in seen]
    return present


def _check_two(path, names: Sequence[str]) -> None:
    if len(names) < 2:
        raise InputError(path, f"integration needs at least 2 batches, got {len(names)} ({', '.join(names)})")


def load_counts(path, batches: Sequence[str], layer: str, genes: str, label_key: str) -> Batches:
    """Batches of a preprocessed ``.h5ad`` (all when ``batches`` is empty), library-size normalised over all
    genes (LIGER ``normalize``), then restricted to the gene set ``genes``; CSR matrices. The cell table keeps
    ``obs['batch']`` and the label column ``label_key`` (when present). Only the counts are read from the file
    (`scfactor.preprocess.contract.load_counts`, block by block)."""
    adata = contract.load_counts(path, batch=list(batches) or None, genes="all", layer=layer, integer=False)
    if "batch" not in adata.obs:
        raise InputError(path, "has no obs['batch'] column")
    names = list(batches) or _present_batches(adata.obs)
    _check_two(path, names)
    mask = contract.gene_mask(adata.var, genes, path)
    b = adata.obs["batch"].astype(str).to_numpy()
    mat = sp.csr_matrix(adata.X)
    mats, obs = [], []
    for name in names:
        sel = b == name
        mats.append(model.library_normalize(mat[sel])[:, mask])
        obs.append(adata.obs.loc[sel])
    return Batches(mats, names, _cell_table(pd.concat(obs), label_key), adata.var_names[mask], str(path))


def load_neumf(paths: Sequence, layer: str, label_key: str) -> Batches:
    """One dense NeuMF ``.h5ad`` per batch; genes = those shared by all files (first file's order); the cell
    table keeps the label column ``label_key`` (when present)."""
    adatas = [io.read_h5ad(p) for p in paths]
    if len(adatas) < 2:
        raise InputError(paths[0] if paths else "neumf", f"integration needs at least 2 batches, got {len(adatas)}")
    shared = adatas[0].var_names
    for a in adatas[1:]:
        shared = shared[shared.isin(a.var_names)]
    if len(shared) == 0:
        raise InputError(paths[1], f"shares no gene with {paths[0]}")
    mats, names, obs = [], [], []
    for p, a in zip(paths, adatas):
        io.validate_names(a, p)
        x = io.get_matrix(a, layer, p)
        io.validate_counts(x, p, what=layer, integer=False)
        if "batch" in a.obs:
            vals = a.obs["batch"].astype(str).unique()
            if len(vals) != 1:
                raise InputError(p, f"holds {len(vals)} batches; expected one batch per file")
            name = str(vals[0])
        else:
            name = Path(p).name.split(".")[0]
        if name in names:
            raise InputError(p, f"batch {name!r} given twice")
        sub = a[:, shared]
        x = io.get_matrix(sub, layer, p)
        x = x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)
        mats.append(model.library_normalize(x))
        names.append(name)
        o = sub.obs.copy()
        o["batch"] = name
        obs.append(o)
    return Batches(mats, names, _cell_table(pd.concat(obs), label_key), pd.Index(shared), str(paths[0]))


def _cell_table(obs: pd.DataFrame, label_key: str) -> pd.DataFrame:
    out = pd.DataFrame(index=obs.index.astype(str))
    out["batch"] = obs["batch"].astype(str).to_numpy()
    if label_key in obs and label_key != "batch":
        out[label_key] = obs[label_key].astype("object").to_numpy()
    return out


def scale_batches(b: Batches) -> list:
    """LIGER ``scaleNotCenter`` per batch on already library-normalised matrices."""
    out = []
    for x in b.mats:
        inv = 1.0 / model.rms_scale_factors(x)
        out.append(sp.csr_matrix(x @ sp.diags(inv)) if sp.issparse(x) else np.asarray(x) * inv)
    return out


def integrate(b: Batches, opts, device, source: str, dtype=None):
    """Run iNMF + quantile normalisation + Leiden + UMAP; return (AnnData, metrics table)."""
    import torch

    dtype = dtype or torch.float64
    xs = scale_batches(b)
    model.check_inputs(xs, b.names, opts.k, b.path)
    LOG.info("iNMF: %d batches (%s), %d cells, %d genes, k=%d, lambda=%g, solver=%s",
             len(xs), ", ".join(f"{n}:{x.shape[0]}" for n, x in zip(b.names, xs)), b.obs.shape[0],
             xs[0].shape[1], opts.k, opts.lambda_, opts.solver)
    fits = model.fit_restarts(xs, k=opts.k, lam=opts.lambda_, max_iters=opts.max_iters, thresh=opts.thresh,
                              nrep=opts.nrep, seed=opts.seed, solver=opts.solver, hals_sweeps=opts.hals_sweeps,
                              device=device, dtype=dtype, log=LOG.info)
    kept = restarts.choose(fits, opts, ref=_ref_index(b, opts))
    res = kept.fit
    LOG.info("iNMF: kept restart %d (%s), objective %.6g after %d iterations (%.1f s)", res.rep,
             opts.keep_restart, res.objective, res.iterations, res.seconds)
    if kept.compared_cells and kept.compared_cells < b.obs.shape[0]:
        LOG.info("restarts compared on a random subsample of %d of %d cells (consensus_cells)",
                 kept.compared_cells, b.obs.shape[0])
    return assemble(b, xs, res.W, res.V, res.H, opts, source, res.trace,
                    {"objective": res.objective, "iterations": res.iterations, "seconds": res.seconds,
                     "best_rep": res.rep, "rep_objectives": list(map(float, res.rep_objectives)),
                     "rep_agreement": list(map(float, kept.agreement)),
                     "rep_agreement_cells": int(kept.compared_cells)},
                    device=device, dtype=dtype, clustered=kept.clustered)


def params(opts) -> dict:
    """The options as an ``uns``-storable dict (schema key names, null as '', arrays as lists)."""
    out = {}
    for key, value in dataclasses.asdict(opts).items():
        if isinstance(value, tuple):
            value = [str(v) for v in value]
        out[key.rstrip("_")] = "" if value is None else value
    return out


def _ref_index(b: Batches, opts) -> int | None:
    """Index of the quantile normalisation reference ``opts.ref_batch`` (None = the largest batch)."""
    if opts.ref_batch and opts.ref_batch not in b.names:
        raise InputError(b.path, f"reference batch {opts.ref_batch!r} is not among {', '.join(b.names)}")
    return b.names.index(opts.ref_batch) if opts.ref_batch else None


def assemble(b: Batches, xs, w, v, h, opts, source, trace, fit_info, device, dtype=None, clustered=None,
             x=None):
    """Quantile-normalise, cluster, embed and score a fitted factorisation; build the AnnData.

    ``clustered``: the loadings' `restarts.normalise_and_cluster` output when already computed; ``x``: the
    float32 stack of ``xs`` (cells of all batches) when already built (it becomes the output's ``X``).
    """
    import anndata as ad

    t0 = time.perf_counter()
    h_norm, qclusters, ref, leiden = clustered or restarts.normalise_and_cluster(h, opts, _ref_index(b, opts))
    if x is None:
        x = sp.vstack([sp.csr_matrix(m, dtype=np.float32) for m in xs]).tocsr() if sp.issparse(xs[0]) \
            else np.vstack(xs).astype(np.float32)
    adata = ad.AnnData(X=x, obs=b.obs.copy(), var=pd.DataFrame(index=b.genes.astype(str)))
    adata.obs["batch"] = pd.Categorical(adata.obs["batch"], categories=b.names)
    if opts.label_key in adata.obs and opts.label_key != "batch":
        adata.obs[opts.label_key] = pd.Categorical(metrics.label_strings(adata.obs[opts.label_key]))
    adata.obsm["X_inmf"] = np.vstack(h).astype(np.float32)
    adata.obsm["X_inmf_norm"] = np.vstack(h_norm).astype(np.float32)
    adata.obs["inmf_cluster"] = pd.Categorical(np.concatenate(qclusters).astype(str))
    adata.varm["W"] = np.asarray(w).T.astype(np.float32)
    for name, vi in zip(b.names, v):
        adata.varm[f"V_{name}"] = np.asarray(vi).T.astype(np.float32)
    LOG.info("quantile normalisation: reference %s, %.1f s", b.names[ref], time.perf_counter() - t0)
    adata.obs["leiden"] = pd.Categorical(leiden.astype(str))
    LOG.info("Leiden: %d clusters, %.1f s", adata.obs["leiden"].nunique(), time.perf_counter() - t0)
    embed(adata, opts)
    LOG.info("UMAP done, %.1f s", time.perf_counter() - t0)
    table = score(adata, b, xs, h, h_norm, opts, device, dtype)
    LOG.info("metrics done, %.1f s", time.perf_counter() - t0)
    adata.uns["inmf"] = {
        "source": source, "batches": list(b.names), "reference_batch": b.names[ref],
        "objective_trace": np.asarray(trace, dtype=np.float64),
        "params": params(opts),
        **{k: v for k, v in fit_info.items()},
        "metrics": {f"{r.metric}:{r.batch}": float(r.value) for r in table.itertuples()},
    }
    return adata, table


def embed(adata, opts) -> None:
    """scanpy's neighbour graph and UMAP of ``obsm['X_inmf_norm']`` into ``obsm['X_umap']`` (and ``obsp``).

    Above ``opts.umap_max_cells`` cells both run on a seeded random subsample of that many cells (display only):
    the other cells get NaN coordinates, ``obs['umap_sample']`` marks the subsample, no ``obsp`` graph is
    stored and ``uns['umap_subsample']`` gives the sizes (the figure says so).
    """
    import scanpy as sc

    from ..core.clustering import import_umap, mark_umap_sample, umap_subsample

    import_umap()  # scanpy's neighbors imports umap
    n, m = adata.n_obs, opts.umap_max_cells
    if n > m:
        adata.obsm["X_umap"], keep = umap_subsample(adata.obsm["X_inmf_norm"], opts.n_neighbors, opts.seed, m,
                                                    min_dist=opts.umap_min_dist)
        mark_umap_sample(adata, keep)
        return
    sc.pp.neighbors(adata, n_neighbors=opts.n_neighbors, use_rep="X_inmf_norm", random_state=opts.seed,
                    transformer="sklearn")
    sc.tl.umap(adata, min_dist=opts.umap_min_dist, random_state=opts.seed)


def _subsample(xs, h_norm, max_cells: int, seed: int):
    """Per batch, a seeded sorted subsample of at most ``max_cells // batches`` cells of ``xs`` and ``h_norm``
    (every cell of a smaller batch)."""
    cap = max(max_cells // len(xs), 2)
    rng = np.random.default_rng(seed)
    out_x, out_h = [], []
    for x, hn in zip(xs, h_norm):
        if x.shape[0] <= cap:
            out_x.append(x)
            out_h.append(hn)
            continue
        keep = np.sort(rng.choice(x.shape[0], cap, replace=False))
        out_x.append(x[keep])
        out_h.append(np.asarray(hn)[keep])
    return out_x, out_h


def score(adata, b: Batches, xs, h, h_norm, opts, device, dtype=None) -> pd.DataFrame:
    """Metrics table: alignment (before/after quantile normalisation), agreement, ARI/NMI per batch.

    Alignment and agreement are subsample estimates on at most ``opts.metrics_max_cells`` cells (split evenly
    between batches; every cell below that). ARI / NMI are
    computed on the cells `scfactor.core.metrics.label_vector` selects (``opts.label_key``,
    ``opts.labels_keep``); when none can be scored they are NaN and a warning says why.
    """
    import torch

    batch = adata.obs["batch"].astype(str).to_numpy()
    cap = opts.metrics_max_cells
    rows = [(name, "all", metrics.alignment_score(adata.obsm[key], batch, seed=opts.seed, max_cells=cap),
             adata.n_obs) for name, key in (("alignment_raw", "X_inmf"), ("alignment", "X_inmf_norm"))]
    xs_a, h_a = _subsample(xs, h_norm, cap, opts.seed)
    dims = min(opts.agreement_dims, min(x.shape[1] for x in xs_a) - 1, min(x.shape[0] for x in xs_a) - 1)
    alone = [model.nmf(x, dims, max_iters=opts.max_iters, seed=opts.seed, solver=opts.solver,
                       hals_sweeps=opts.hals_sweeps, device=device, dtype=dtype or torch.float64) for x in xs_a]
    rows.append(("agreement", "all", metrics.agreement(alone, h_a, k=opts.agreement_k), adata.n_obs))
    labels, scored, warning = metrics.label_vector(adata.obs, opts.label_key, opts.labels_keep)
    if warning:
        LOG.warning("ARI / NMI: %s", warning)
    clusters = adata.obs["leiden"].astype(str).to_numpy()
    for scope in ["all", *b.names]:
        sel = np.ones(adata.n_obs, bool) if scope == "all" else batch == scope
        if not scored[sel].any():
            ari, nmi, n = float("nan"), float("nan"), 0
        else:
            ari, nmi, n = metrics.ari_nmi(labels[sel & scored], clusters[sel & scored])
        rows += [("ari", scope, ari, n), ("nmi", scope, nmi, n), ("n_labelled", scope, float(n), int(sel.sum()))]
    rows.append(("n_clusters", "all", float(adata.obs["leiden"].nunique()), adata.n_obs))
    return pd.DataFrame(rows, columns=["metric", "batch", "value", "n_cells"])


# --------------------------------------------------------------------------- online (backed) mode
class BackedSource:
    """Cells of a backed ``.h5ad`` read in row chunks, never the whole matrix.

    Rows are library-size normalised over all genes, restricted to the selected genes and (after
    `fit_scale`, one streaming pass) scaled by each batch's per-gene RMS, exactly as `load_counts`
    + `scale_batches` do in memory.
    """

    def __init__(self, path, batches: Sequence[str], layer: str, genes: str, label_key: str):
        import anndata as ad
        import h5py
        self.path = str(io.require_file(path))
        try:
            self.file = h5py.File(self.path, "r")
            obs = ad.io.read_elem(self.file["obs"])
            var = ad.io.read_elem(self.file["var"])
        except Exception as exc:
            raise InputError(path, f"cannot read h5ad: {str(exc).splitlines()[0]}") from None
        key = "X" if layer in (None, "X") else f"layers/{layer}"
        if key not in self.file:
            raise InputError(path, f"has no layer {layer!r}")
        node = self.file[key]
        self.dense = isinstance(node, h5py.Dataset)
        self.x = node if self.dense else ad.io.sparse_dataset(node)
        if not self.dense and self.x.format != "csr":
            raise InputError(path, f"layer {layer!r} is stored as {self.x.format}; online mode needs CSR rows")
        if "batch" not in obs:
            raise InputError(path, "has no obs['batch'] column")
        b = obs["batch"].astype(str).to_numpy()
        present = _present_batches(obs)
        self.names = list(batches) or present
        missing = [n for n in self.names if n not in present]
        if missing:
            raise InputError(path, f"batch {missing[0]!r} has no cells (batches: {', '.join(present)})")
        _check_two(path, self.names)
        self.mask = contract.gene_mask(var, genes, path)  # the same gene sets as `load_counts`
        self.genes = pd.Index(var.index.astype(str))[self.mask]
        self.rows = [np.flatnonzero(b == n) for n in self.names]
        cols = ["batch"] + ([label_key] if label_key in obs and label_key != "batch" else [])
        self.obs = _cell_table(pd.concat([obs.iloc[r][cols] for r in self.rows]), label_key)
        self.inv_rms = [np.ones(self.mask.sum()) for _ in self.names]
        self.nnz = [0 for _ in self.names]

    @property
    def n_cells(self) -> list[int]:
        """Cells per batch."""
        return [len(r) for r in self.rows]

    def read(self, bi: int, start: int, stop: int, scaled: bool = True):
        """Cells ``start:stop`` of batch ``bi``: normalised, gene-selected (and scaled) CSR rows."""
        rows = self.rows[bi][start:stop]
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        block = self.x[lo:hi]
        m = sp.csr_matrix(block, dtype=np.float64)[rows - lo]
        if m.nnz:
            vals = m.data
            if not np.isfinite(vals).all():
                raise InputError(self.path, f"batch {self.names[bi]!r} has NaN or infinite values")
            if (vals < 0).any():
                raise InputError(self.path, f"batch {self.names[bi]!r} has negative values")
        m = model.library_normalize(m)[:, self.mask]
        if scaled:
            m = sp.csr_matrix(m @ sp.diags(self.inv_rms[bi]))
        return m

    def fit_scale(self, chunk: int) -> None:
        """One streaming pass: per batch and gene, the RMS of the normalised values (and the stored entries)."""
        for bi, n in enumerate(self.n_cells):
            sq = np.zeros(self.mask.sum())
            self.nnz[bi] = 0
            for s0 in range(0, n, chunk):
                m = self.read(bi, s0, min(s0 + chunk, n), scaled=False)
                sq += np.asarray(m.multiply(m).sum(axis=0)).ravel()
                self.nnz[bi] += m.nnz
            rms = np.sqrt(sq / max(n - 1, 1))
            self.inv_rms[bi] = 1.0 / np.where(rms > 0, rms, 1.0)

    def stream(self, chunk: int, seed: int):
        """Yield ``(batch, cell indices within the batch, scaled CSR)`` in a seeded chunk order."""
        for bi, s0, s1 in model.minibatch_order(self.n_cells, chunk, seed):
            yield bi, np.arange(s0, s1), self.read(bi, s0, s1)

    def matrix(self, chunk: int):
        """Every batch's scaled rows, stacked in batch order into one float32 CSR filled chunk by chunk (no
        float64 copy of the whole matrix; needs `fit_scale`, whose entry count bounds the buffers), and one CSR per batch sharing its buffers."""
        total = int(sum(self.nnz))
        idx = np.int32 if total < 2 ** 31 else np.int64
        data, indices = np.empty(total, np.float32), np.empty(total, idx)
        indptr = np.zeros(sum(self.n_cells) + 1, idx)
        row = pos = 0
        for bi, n in enumerate(self.n_cells):
            for s0 in range(0, n, chunk):
                m = self.read(bi, s0, min(s0 + chunk, n))
                data[pos:pos + m.nnz] = m.data
                indices[pos:pos + m.nnz] = m.indices
                indptr[row + 1:row + m.shape[0] + 1] = m.indptr[1:] + pos
                row, pos = row + m.shape[0], pos + m.nnz
        data, indices = data[:pos], indices[:pos]  # scaling drops stored zeros: at most the first pass's count
        x = sp.csr_matrix((data, indices, indptr), shape=(row, len(self.genes)), copy=False)
        starts = np.cumsum([0, *self.n_cells])
        return x, [_row_view(x, a, z) for a, z in zip(starts[:-1], starts[1:])]

    def close(self):
        """Close the backed file."""
        self.file.close()


def _row_view(x: sp.csr_matrix, start: int, stop: int) -> sp.csr_matrix:
    """Rows ``start:stop`` of the CSR ``x`` sharing its data and indices (scipy's constructor copies a view
    smaller than half its buffer, so the arrays are set after construction)."""
    p0, p1 = x.indptr[start], x.indptr[stop]
    out = sp.csr_matrix((stop - start, x.shape[1]), dtype=x.dtype)
    out.data, out.indices, out.indptr = x.data[p0:p1], x.indices[p0:p1], x.indptr[start:stop + 1] - p0
    return out


def integrate_online(path, opts, layer: str, device, source: str, dtype=None):
    """Online iNMF streaming a backed ``.h5ad``, then the same downstream steps as `integrate`."""
    import torch

    dtype = dtype or torch.float64
    epochs, minibatch = opts.online_epochs, opts.online_minibatch
    src = BackedSource(path, opts.batches, layer, opts.genes, opts.label_key)
    try:
        n_genes = int(src.mask.sum())
        model.check_factor_count(opts.k, n_genes, dict(zip(src.names, src.n_cells)), path)
        src.fit_scale(minibatch)
        LOG.info("online iNMF: %d batches (%s), %d genes, k=%d, lambda=%g, %d epochs of minibatches "
                 "of %d cells", len(src.names), ", ".join(f"{n}:{c}" for n, c in zip(src.names, src.n_cells)),
                 n_genes, opts.k, opts.lambda_, epochs, minibatch)
        res = model.fit_online_inmf(lambda e: src.stream(minibatch, opts.seed + 1 + e), src.n_cells, n_genes,
                                    k=opts.k, lam=opts.lambda_, epochs=epochs, seed=opts.seed, device=device,
                                    dtype=dtype, h_stream=lambda: src.stream(minibatch, opts.seed), log=LOG.info)
        x, xs = src.matrix(minibatch)
        b = Batches(xs, src.names, src.obs, src.genes, str(path))
    finally:
        src.close()
    return assemble(b, xs, res.W, res.V, res.H, opts, source, res.epoch_objectives + [res.objective],
                    {"objective": res.objective, "iterations": epochs, "seconds": res.seconds,
                     "best_rep": 0, "rep_objectives": [res.objective], "mode": "online"},
                    device=device, dtype=dtype, x=x)
