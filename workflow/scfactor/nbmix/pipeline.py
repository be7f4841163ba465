"""The nbmix steps' logic: load a run's cells, fit the NB mixture or the Leiden baseline, score them against
the labels, build the figures of a run and the summary table (no argparse, no file names chosen).

Every step takes the typed options object of its `scfactor.nbmix.cli` step (``FIT``, ``LEIDEN``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import io, metrics
from ..core.csr_stack import row_sums
from ..core.errors import InputError
from ..core.log import LOG
from ..preprocess import contract

LABEL_KINDS = ("truth", "reference", "none")
LABEL_KIND_TEXT = {"truth": "ground truth", "reference": "reference clustering (not ground truth)",
                   "none": "no labels"}
#: columns every metrics table has (the summary checks them)
METRICS_COLUMNS = ["dataset", "method", "label_kind", "k", "n_cells", "accuracy_majority", "accuracy_hungarian",
                   "nmi", "ari", "log_loss"]


@dataclass
class FitOutputs:
    """What the fit step writes: the annotated AnnData, the one-row metrics table, the trace table."""

    adata: object
    metrics: pd.DataFrame
    trace: pd.DataFrame


@dataclass
class LeidenOutputs:
    """What the Leiden baseline writes: the AnnData (Leiden, PCA, UMAP) and the one-row metrics table."""

    adata: object
    metrics: pd.DataFrame


# --------------------------------------------------------------------------- data and scores
def load_cells(path, opts):
    """The cells of one run: `scfactor.preprocess.contract.load_counts` (a preprocessed or simulated ``.h5ad``,
    only its count matrix read, a block of cells at a time) with the run's ``batch``, ``genes`` and ``layer``;
    ``X`` the raw counts (CSR, the file's dtype), held and written once: the outputs carry no copy of them in
    ``layers`` (before, ``layers[layer]`` repeated ``X`` and every output file held the counts twice).

    Cells with zero total count over the selected genes are dropped when ``opts.drop_empty_cells``, else an
    `InputError`.
    """
    adata = contract.load_counts(path, batch=opts.batch, genes=opts.genes, layer=opts.layer, integer=True)
    tot = row_sums(adata.X)  # a block at a time: scipy's sum copies every count as int64
    empty = tot <= 0
    if empty.any():
        if not opts.drop_empty_cells:
            raise InputError(path, f"{int(empty.sum())} cell(s) have zero total count over the selected genes "
                                   f"(first: {adata.obs_names[np.flatnonzero(empty)[0]]!r}); "
                                   "filter them or set drop_empty_cells")
        LOG.warning("dropping %d cells with zero total count over the selected genes", int(empty.sum()))
        adata = adata[~empty].copy()
    return adata


def labels_of(adata, label_kind: str, label_key: str, keep=(), where: str = ""):
    """The labels to score against: ``obs[label_key]`` as text with None for the cells not scored (unlabelled,
    or outside ``keep`` when it names labels), or None when ``label_kind`` is ``none``.

    `scfactor.core.metrics.label_vector` reads the column; when no cell can be scored (no such column, no
    labelled cell, ``keep`` matching nothing) or some ``keep`` values label no cell, its warning is logged
    (prefixed by ``where``).
    """
    if label_kind == "none":
        return None
    labels, mask, warning = metrics.label_vector(adata.obs, label_key, keep)
    if warning:
        LOG.warning("%s%s", f"{where}: " if where else "", warning)
    out = labels.copy()
    out[~mask] = None
    return out


def score(labels, pred, resp, label_kind: str) -> dict:
    """Agreement of ``pred`` with labels on the labelled cells.

    With ``label_kind='truth'`` all scores are reported; with ``'reference'`` (labels from another
    clustering) only the symmetric agreement scores NMI and ARI, and accuracy / log loss are NaN.
    """
    nan = float("nan")
    out = {"label_kind": LABEL_KIND_TEXT[label_kind], "n_scored": 0, "n_labels": 0,
           "accuracy_majority": nan, "accuracy_hungarian": nan, "nmi": nan, "ari": nan, "log_loss": nan}
    if labels is None:
        return out
    keep = metrics.labelled_mask(labels)
    if keep.sum() == 0:
        return out
    sc = metrics.clustering_scores(labels[keep], np.asarray(pred)[keep],
                                   None if resp is None else np.asarray(resp)[keep])
    out.update({k: v for k, v in sc.items() if k in out})
    if label_kind != "truth":
        out.update(accuracy_majority=nan, accuracy_hungarian=nan, log_loss=nan)
    return out


def metrics_frame(dataset: str, method: str, info: dict, scores: dict) -> pd.DataFrame:
    """One-row metrics table with a fixed column order."""
    row = {"dataset": dataset, "method": method, **info, **scores}
    return pd.DataFrame([row])


def _label_key(opts) -> str:
    """The label column a run is scored against, as recorded in its metrics ('' when not scored)."""
    return "" if opts.labels == "none" else opts.label_key


def _scores_text(scores: dict) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in scores.items() if isinstance(v, float))


# --------------------------------------------------------------------------- the NB mixture
def em_settings(opts) -> dict:
    """Keyword arguments of `model.fit_em` from the fit step's options (all but ``seed`` and ``device``)."""
    import torch
    return dict(init=opts.init, restarts=list(opts.restarts), nrep=opts.nrep, max_iters=opts.max_iters,
                tol=opts.tol, resp_tol=opts.resp_tol, screen_rounds=opts.screen_rounds,
                screen_margin=opts.screen_margin, best_tol=opts.best_tol,
                subsample_fraction=opts.subsample_fraction, newton_steps=opts.newton_steps, first_newton_steps=opts.first_newton_steps, n_pcs=opts.n_pcs,
                leiden_resolution=opts.leiden_resolution, restart_subsample_above=opts.restart_subsample_above,
                restart_subsample_cells=opts.restart_subsample_cells, full_max_iters=opts.full_max_iters,
                full_m_step_cells=opts.full_m_step_cells,
                dtype=torch.float64 if opts.dtype == "float64" else torch.float32)


def fit(path, opts, dataset: str | None = None) -> FitOutputs:
    """Fit the NB mixture (batch EM or amortised, ``opts.method``) to the run's cells and score it.

    Outputs an AnnData with ``obs['nbmix']`` (cluster), ``obsm['nbmix_resp']`` (responsibilities),
    ``varm['nbmix_log_mean']`` and ``varm['nbmix_log_inv_disp']`` (``[genes, k]``), ``uns['nbmix']`` (mixing
    weights, log-likelihood trace, settings, one record per restart); a one-row metrics table (with
    ``n_restarts``, ``n_at_best``: how many restarts reached the best log-likelihood within ``best_tol``, and
    ``n_screened_out``: how many the restart screen stopped early);
    the trace: EM's rounds of every restart (``restart``, ``init``, ``kept``, ``round``, ``loglik``,
    ``loglik_change_per_cell``, ``mean_resp_change``, ``max_resp_change``) or the amortised ELBO per epoch.
    """
    from ..core.device import torch_device
    from . import model
    device = torch_device(opts.device)
    dataset = dataset or Path(path).stem
    adata = load_cells(path, opts)
    k = opts.k
    if k > adata.n_obs:
        raise InputError(path, f"k={k} components but only {adata.n_obs} cells")
    labels = labels_of(adata, opts.labels, opts.label_key, opts.labels_keep, where=dataset)
    LOG.info("%s: %d cells x %d genes, k=%d, method=%s, device=%s", dataset, adata.n_obs, adata.n_vars,
             k, opts.method, device)
    em_kwargs = em_settings(opts)
    if opts.method == "em":
        res = model.fit_em(adata.X, k, seed=opts.seed, device=device, path=path, **em_kwargs)
        trace = pd.DataFrame(res.rounds)
        trace.insert(2, "kept", trace["restart"] == res.rep)
    else:
        _, res = model.fit_amortized(adata.X, k, epochs=opts.amortized_epochs,
                                     batch_size=opts.amortized_batch_size, lr=opts.amortized_lr,
                                     hidden=opts.amortized_hidden, seed=opts.seed,
                                     init_subsample=opts.amortized_init_subsample, em_kwargs=em_kwargs,
                                     device=device, path=path)
        trace = pd.DataFrame({"epoch": np.arange(1, len(res.trace) + 1), "elbo_per_cell": res.trace})
    pred = res.labels
    scores = score(labels, pred, res.resp, opts.labels)
    info = {"k": k, "n_cells": adata.n_obs, "n_genes": adata.n_vars, "label_key": _label_key(opts), "init": res.init,
            "loglik": res.loglik, "n_iter": res.n_iter, "converged": res.converged,
            "n_restarts": len(res.restarts), "n_at_best": res.n_at_best if res.restarts else 0,
            "n_screened_out": res.n_screened_out if res.restarts else 0}
    table = metrics_frame(dataset, f"nbmix_{opts.method}", info, scores)
    LOG.info("log-likelihood %.6g; %s", res.loglik, _scores_text(scores))
    if res.restarts:
        LOG.info("%d of %d restarts reached the best log-likelihood (within %g per cell); %d screened out after "
                 "%d rounds", res.n_at_best, len(res.restarts), opts.best_tol, res.n_screened_out, opts.screen_rounds)

    adata.obs["nbmix"] = pd.Categorical([str(c) for c in pred], categories=[str(c) for c in range(k)])
    adata.obsm["nbmix_resp"] = res.resp.astype(np.float32)
    adata.varm["nbmix_log_mean"] = res.log_mean.T
    adata.varm["nbmix_log_inv_disp"] = res.log_inv_disp.T
    adata.uns["nbmix"] = {
        "pi": np.asarray(res.pi, dtype=float), "loglik": float(res.loglik), "trace": np.asarray(res.trace, float),
        "method": opts.method, "init": res.init, "k": k, "seed": opts.seed, "n_iter": int(res.n_iter),
        "converged": bool(res.converged), "seconds": float(res.seconds), "label_kind": opts.labels,
        "label_key": opts.label_key, "labels_keep": [str(v) for v in opts.labels_keep], "dataset": dataset,
        "restarts": pd.DataFrame(res.restarts).to_dict(orient="list") if res.restarts else {},
        "full_e_steps": int(res.full_e_steps), "restart_cells": int(res.restart_cells),
    }
    return FitOutputs(adata, table, trace)


# --------------------------------------------------------------------------- the Leiden baseline
def leiden(path, opts, dataset: str | None = None) -> LeidenOutputs:
    """The scanpy baseline (`scfactor.core.clustering.scanpy_pipeline`: normalise, log1p, PCA, k-NN graph,
    Leiden, UMAP) on the run's cells, scored like the NB mixture.

    Outputs an AnnData with ``obs['leiden']``, ``obsm['X_pca']`` and ``obsm['X_umap']`` (used by the figures;
    above ``opts.umap_max_cells`` cells NaN outside a random subsample, marked by ``obs['umap_sample']``) and a
    one-row metrics table with the NB mixture's columns.
    """
    from ..core.clustering import mark_umap_sample, scanpy_pipeline
    dataset = dataset or Path(path).stem
    adata = load_cells(path, opts)
    if adata.n_obs < 3:
        raise InputError(path, f"needs at least 3 cells for a neighbour graph (has {adata.n_obs})")
    t0 = time.time()
    res = scanpy_pipeline(adata.X, n_pcs=opts.n_pcs, n_neighbors=opts.n_neighbors, resolution=opts.resolution,
                          seed=opts.seed, umap_max_cells=opts.umap_max_cells)
    sec = time.time() - t0
    pred = res["leiden"]
    adata.obs["leiden"] = pd.Categorical(pred.astype(str), categories=sorted(set(pred.astype(str)), key=int))
    adata.obsm["X_pca"] = res["X_pca"]
    adata.obsm["X_umap"] = res["X_umap"]
    if res["umap_sample"] is not None:
        mark_umap_sample(adata, res["umap_sample"])
    adata.uns["leiden_baseline"] = {"n_pcs": opts.n_pcs, "n_neighbors": opts.n_neighbors,
                                    "resolution": opts.resolution, "seed": opts.seed, "seconds": sec}
    scores = score(labels_of(adata, opts.labels, opts.label_key, opts.labels_keep, where=f"{dataset} (leiden)"),
                   pred, None, opts.labels)
    info = {"k": int(pred.max() + 1), "n_cells": adata.n_obs, "n_genes": adata.n_vars, "label_key": _label_key(opts),
            "init": "",
            "loglik": float("nan"), "n_iter": 0, "converged": True, "n_restarts": 0, "n_at_best": 0,
            "n_screened_out": 0}
    LOG.info("leiden: %d clusters; %s", info["k"], _scores_text(scores))
    return LeidenOutputs(adata, metrics_frame(dataset, "leiden", info, scores))


# --------------------------------------------------------------------------- figures and summary
FIGURES = ("umap", "correlation", "poisson_nb")


def figures(nbmix_path, leiden_path, dataset: str | None, max_cells: int, seed: int) -> dict:
    """The figures of one run, ``{'umap', 'correlation', 'poisson_nb'}`` -> matplotlib figure, from the outputs
    of the fit step (``nbmix_path``) and of the Leiden baseline (``leiden_path``).

    Of both files only ``obs`` / ``obsm`` / ``uns`` are read (`core.io.h5ad_without_matrices`), and of the fit's
    counts only the rows of the cells in the Poisson-vs-NB figure: at most ``max_cells`` of them, a random subsample
    drawn with ``seed`` (`poisson_nb_rows`), said in the figure's title."""
    with io.h5ad_without_matrices(nbmix_path) as (fit_ad, counts), io.h5ad_without_matrices(leiden_path) as (base, _):
        if counts is None:
            raise InputError(nbmix_path, "has no X (the counts); is it the nbmix step's output?")
        return _figures(fit_ad, counts, base, nbmix_path, leiden_path, dataset, max_cells, seed)


def poisson_nb_rows(keep: np.ndarray, max_cells: int, seed: int) -> np.ndarray:
    """Sorted rows of the cells in the Poisson-vs-NB figure: those of ``keep``, or a seeded random ``max_cells``
    of them when there are more."""
    rows = np.flatnonzero(keep)
    if len(rows) > max_cells:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_cells, replace=False))
    return rows


def _figures(fit_ad, counts, base, nbmix_path, leiden_path, dataset, max_cells, seed) -> dict:
    """`figures` on the two opened files (``counts``: the fit's ``X`` on disk)."""
    from . import plots
    from .model import fit_labels
    for path, a, key in ((nbmix_path, fit_ad, "nbmix"), (leiden_path, base, "leiden")):
        if key not in a.obs:
            raise InputError(path, f"has no obs[{key!r}]; is it the right step's output?")
    if "X_umap" not in base.obsm:
        raise InputError(leiden_path, "has no obsm['X_umap']")
    if not fit_ad.obs_names.equals(base.obs_names):
        raise InputError(leiden_path, f"cells differ from {nbmix_path} (run both on the same dataset settings)")
    dataset = dataset or fit_ad.uns.get("nbmix", {}).get("dataset", Path(nbmix_path).stem)
    settings = fit_ad.uns.get("nbmix", {})
    kind = str(settings.get("label_kind", "none"))
    key = str(settings.get("label_key", "label"))
    labels = labels_of(fit_ad, kind, key, tuple(settings.get("labels_keep", ())), where=f"{dataset} (figures)")
    if labels is not None and not metrics.labelled_mask(labels).any():
        labels = None  # nothing to show (the warning above says why)
    label_title = None if labels is None else \
        LABEL_KIND_TEXT[kind].capitalize() + ("" if key == "label" else f" ({key})")
    figs = {"umap": plots.umap_triptych(base.obsm["X_umap"], labels, label_title, base.obs["leiden"].to_numpy(),
                                        fit_ad.obs["nbmix"].to_numpy(), dataset)}
    resp = np.asarray(fit_ad.obsm["nbmix_resp"])
    if labels is not None and metrics.labelled_mask(labels).any():
        keep = metrics.labelled_mask(labels)
        lab, lab_title = labels[keep], label_title
    else:  # no labels: describe the NB mixture's own clusters
        keep = np.ones(fit_ad.n_obs, bool)
        lab, lab_title = fit_ad.obs["nbmix"].astype(str).to_numpy(), "NB-mixture clusters (no labels)"
    r, names = metrics.label_correlation(lab, resp[keep])
    figs["correlation"] = plots.correlation_heatmap(r, names, lab_title, dataset)
    kept, rows = np.flatnonzero(keep), poisson_nb_rows(keep, max_cells, seed)
    if len(rows) < len(kept):
        LOG.info("Poisson vs NB figure: a random subsample of %d of %d cells (figure_max_cells)", len(rows), len(kept))
    names, nb_ll, pois_ll, _, _ = fit_labels(io.read_rows(counts, rows), lab[np.searchsorted(kept, rows)])
    figs["poisson_nb"] = plots.poisson_vs_nb(names, nb_ll, pois_ll, lab_title.lower(), dataset,
                                             shown=len(rows), of=len(kept))
    return figs


def summary(paths):
    """``(table, figure)``: the one-row metrics tables at ``paths`` concatenated, and the table as a figure."""
    from .plots import metrics_table_figure
    frames = []
    for path in paths:
        df = io.read_table(path)
        io.require_columns(df, METRICS_COLUMNS, path, what="metrics table")
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)
    return table, metrics_table_figure(table)
