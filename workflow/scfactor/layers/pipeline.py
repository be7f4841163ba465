"""The steps' logic: fit a preprocessed data set, open a fit for its figures, simulate block counts.

Functions take the typed options objects of `scfactor.layers.cli` (``FIT.defaults(...)`` in tests and
library use) and return the objects the CLI writes; no file names are chosen here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import InputError, ScfactorError
from ..core.log import LOG


@dataclass
class LayersOutput:
    """What the layers step writes: the fit (``.h5ad``), the loss per epoch and the metrics tables."""

    adata: object
    loss: pd.DataFrame
    metrics: pd.DataFrame


def fit(x, opts, device="cpu", log_every: int | None = None):
    """`model.fit_layered_nmf` of matrix ``x`` with the settings of a ``FIT`` options object."""
    from .model import fit_layered_nmf
    return fit_layered_nmf(x, layers=opts.layers, solver=opts.solver, epochs=opts.epochs, lr=opts.lr,
                           seed=opts.seed, inner_iters=opts.inner_iters, device=device, log_every=log_every)


def truth_of(adata):
    """(theta_true, beta_true, blocks) when the input is a block simulation, else None."""
    if "theta_true" in adata.obsm and "beta_true" in adata.varm and "block" in adata.obs:
        return (np.asarray(adata.obsm["theta_true"]), np.asarray(adata.varm["beta_true"]),
                adata.obs["block"].astype(str).to_numpy())
    return None


def label_scores(obs: pd.DataFrame, factor: np.ndarray, opts) -> dict:
    """``ari_label`` (ARI of each cell's strongest factor against the labels) and ``n_labelled`` (cells scored).

    The cells scored are those `scfactor.core.metrics.label_vector` selects (``opts.label_key``,
    ``opts.labels_keep``); when there are none, ``ari_label`` is NaN and a warning says why.
    """
    from ..core.metrics import ari, label_vector
    labels, scored, warning = label_vector(obs, opts.label_key, opts.labels_keep)
    if warning:
        LOG.warning("ari_label: %s", warning)
    n = int(scored.sum())
    value = ari(labels[scored], np.asarray(factor)[scored]) if n else float("nan")
    return {"ari_label": value, "n_labelled": n}


def layers(path, opts, checkpoint_dir=None) -> LayersOutput:
    """Fit the multilayer NMF to the preprocessed ``.h5ad`` at ``path``; score it (labels, simulation truth).

    Up to ``opts.minibatch_cells`` cells the matrix is loaded (`scfactor.preprocess.contract.load_counts`: that
    layer alone) and fitted at once (`fit`); above, the cells are
    read from the file chunk by chunk and fitted on minibatches (`layers_minibatch`, checkpointed after every
    epoch in ``checkpoint_dir`` when given). Raises `InputError` /
    `DeviceError` / `ScfactorError` (one line) for a bad input, an absent device or a diverging fit.
    """
    from ..core.device import torch_device
    from ..preprocess import contract
    from ..core.io import h5ad_n_obs

    n = h5ad_n_obs(path)
    if n is not None and n > opts.minibatch_cells:
        return layers_minibatch(path, opts, checkpoint_dir)
    device = torch_device(opts.device)
    adata = contract.load_counts(path, genes=opts.genes, layer=opts.layer, integer=False)
    widths = _widths(opts, *adata.shape, path)
    if float(adata.X.sum()) == 0:
        raise InputError(path, f"layer {opts.layer!r} is all zeros")
    LOG.info("fitting %s layers %s (%s beta) on %d cells x %d genes, device %s", path, widths,
             opts.solver, adata.n_obs, adata.n_vars, device)
    try:
        res = fit(adata.X, opts, device=device, log_every=max(1, opts.epochs // 10))
    except FloatingPointError as exc:
        raise ScfactorError(f"{path}: {exc}") from None
    return _output(res, adata.obs, adata.var, widths, opts, path, device, truth_of(adata), {})


#: the minibatch fit's checkpoint file inside the step's checkpoint folder
MINIBATCH_CHECKPOINT = "minibatch.npz"


def layers_minibatch(path, opts, checkpoint_dir=None) -> LayersOutput:
    """`layers` on minibatches: the cells are read from the file in row ranges (`stream.CountRows`) and fitted by
    `minibatch.fit_layered_nmf_minibatch`, from an uncompressed scratch copy of the selected genes
    (`stream.spool`); the whole matrix is never loaded. With ``checkpoint_dir`` the fit
    saves its state there after every epoch and resumes from it (`MINIBATCH_CHECKPOINT`)."""
    from ..core.device import torch_device
    from .minibatch import AllZero, fit_layered_nmf_minibatch
    from .stream import CountRows, spool

    device = torch_device(opts.device)
    src = CountRows(path, opts.layer, opts.genes)
    rows = src
    try:
        widths = _widths(opts, *src.shape, path)
        rows = spool(src)
        LOG.info("fitting %s layers %s (%s beta) on %d cells x %d genes in minibatches of %d cells, %d epochs, "
                 "device %s", path, widths, opts.solver, *src.shape, opts.minibatch_size, opts.minibatch_epochs,
                 device)
        try:
            res = fit_layered_nmf_minibatch(
                rows.read, *src.shape, layers=opts.layers, solver=opts.solver, epochs=opts.minibatch_epochs,
                lr=opts.lr, seed=opts.seed, inner_iters=opts.inner_iters, batch_size=opts.minibatch_size,
                cell_iters=opts.minibatch_cell_iters, device=device, log_every=max(1, opts.minibatch_epochs // 10),
                checkpoint_path=None if checkpoint_dir is None else Path(checkpoint_dir) / MINIBATCH_CHECKPOINT)
        except AllZero:
            raise InputError(path, f"layer {opts.layer!r} is all zeros") from None
        except FloatingPointError as exc:
            raise ScfactorError(f"{path}: {exc}") from None
        truth = src.truth()
    finally:
        if rows is not src:
            rows.close()
        src.close()
    extra = {"minibatch": True, "minibatch_size": opts.minibatch_size, "minibatch_epochs": opts.minibatch_epochs,
             "minibatch_cell_iters": opts.minibatch_cell_iters}
    return _output(res, src.obs, src.var, widths, opts, path, device, truth, extra)


def _widths(opts, n_cells: int, n_genes: int, path) -> list:
    """The checked layer widths (`model.validate_layers`), or `InputError` naming the file and its shape."""
    from .model import validate_layers
    try:
        return validate_layers(opts.layers, n_cells, n_genes)
    except ValueError as exc:
        raise InputError(path, f"{exc} ({n_cells} cells x {n_genes} genes)") from None


def _output(res, obs, var, widths, opts, path, device, truth, extra: dict) -> LayersOutput:
    """The fit as written: AnnData (factors, strongest factor per cell, settings), loss and metrics tables."""
    import anndata as ad

    from .model import recovery_metrics
    LOG.info("fit done in %.2f s wall, %.2f s CPU; loss %.6g -> %.6g", res.seconds, res.cpu_seconds,
             res.loss[0], res.loss[-1])
    out = ad.AnnData(obs=obs.copy(), var=var.copy())
    for level, (theta, beta) in enumerate(zip(res.thetas, res.betas), start=1):
        out.uns[f"theta_l{level}"] = theta
        out.varm[f"beta_l{level}"] = beta
    cells = res.cell_factors()
    out.obsm["X_layers"] = cells
    weighted = cells * res.betas[-1].sum(axis=0)
    out.obs["layers_factor"] = pd.Categorical([f"f{j}" for j in weighted.argmax(1)],
                                              categories=[f"f{j}" for j in range(widths[-1])])
    out.uns["layers"] = {"layers": widths, "solver": opts.solver, "epochs": opts.epochs, "lr": opts.lr,
                         "inner_iters": opts.inner_iters, "seed": opts.seed, "genes": opts.genes,
                         "label_key": opts.label_key, "labels_keep": [str(v) for v in opts.labels_keep],
                         "layer": opts.layer, "input": str(path), "loss": res.loss,
                         "seconds": res.seconds, "cpu_seconds": res.cpu_seconds, "device": str(device), **extra}

    loss = pd.DataFrame({"epoch": np.arange(1, len(res.loss) + 1), "loss": res.loss})
    metrics = {"n_cells": out.n_obs, "n_genes": out.n_vars, "final_loss": res.loss[-1]}
    metrics.update(label_scores(obs, weighted.argmax(1), opts))
    if truth is not None:
        metrics.update(recovery_metrics(res, *truth))
        LOG.info("recovery: %s", ", ".join(f"{k}={v:.3f}" for k, v in metrics.items()
                                           if k.startswith(("ari", "beta_m"))))
    table = pd.DataFrame({"metric": list(metrics), "value": [f"{float(v):.6g}" for v in metrics.values()]})
    return LayersOutput(adata=out, loss=loss.assign(loss=loss["loss"].map(lambda v: f"{v:.8g}")), metrics=table)


def load_fit(path, kind: str, level: int):
    """Open a layers ``.h5ad`` and return ``(adata, matrix)`` for ``theta`` (uns) or ``beta`` (varm).

    Raises `InputError` naming the file when the layer is absent.
    """
    from ..core.io import read_h5ad
    adata = read_h5ad(path)
    key = f"{kind}_l{level}"
    store = adata.uns if kind == "theta" else adata.varm
    if key not in store:
        have = sorted(k for k in store.keys() if k.startswith(kind))
        where = "uns" if kind == "theta" else "varm"
        raise InputError(path, f"has no {where}[{key!r}] (has: {', '.join(have) or 'none'})")
    return adata, np.asarray(store[key])


def simulate_blocks(opts):
    """The block simulation of a ``SIMULATE`` options object as AnnData (counts, labels, truth, settings).

    Impossible sizes (``K > min(N, M)``) raise `ScfactorError` (one line).
    """
    import dataclasses

    from .simulate import simulate, to_anndata
    try:
        sim = simulate(opts)
    except ValueError as exc:
        raise ScfactorError(f"simulate_blocks: {exc}") from None
    adata = to_anndata(sim, dataclasses.asdict(opts))
    LOG.info("simulated %d cells x %d genes, K=%d (%s), mean count %.2f", adata.n_obs, adata.n_vars,
             opts.n_factors, opts.mode, float(sim.x.mean()))
    return adata
