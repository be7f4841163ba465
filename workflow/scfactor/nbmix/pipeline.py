"""Loading, scoring and storing NB-mixture / Leiden results (shared by the nbmix scripts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core import io, metrics
from ..preprocess import contract
from ..core.log import LOG
from ..core.errors import InputError

LABEL_KINDS = ("truth", "reference", "none")
LABEL_KIND_TEXT = {"truth": "ground truth", "reference": "reference clustering (not ground truth)",
                   "none": "no labels"}


def load_counts(path, batch=None, genes="all", layer="counts", drop_empty_cells=False):
    """Open a preprocessed or simulated ``.h5ad`` (`scfactor.io.load_preprocessed`); ``X`` becomes the raw
    counts (CSR). Cells with zero total count (after gene selection) are an error unless ``drop_empty_cells``.
    """
    adata = contract.load_preprocessed(path, batch=batch, genes=genes, layer=layer, integer=True)
    adata.X = sp.csr_matrix(adata.X)
    tot = np.asarray(adata.X.sum(axis=1)).ravel()
    empty = tot <= 0
    if empty.any():
        if not drop_empty_cells:
            raise InputError(path, f"{int(empty.sum())} cell(s) have zero total count over the selected genes "
                                   f"(first: {adata.obs_names[np.flatnonzero(empty)[0]]!r}); "
                                   "filter them or set drop_empty_cells")
        LOG.warning("dropping %d cells with zero total count over the selected genes", int(empty.sum()))
        adata = adata[~empty].copy()
    return adata


def add_data_args(p) -> None:
    """Options shared by the nbmix scripts that read a data set (input, layer, batch, genes, labels)."""
    p.add_argument("--input", required=True, help="preprocessed or simulated .h5ad")
    p.add_argument("--dataset", default=None, help="name recorded in outputs")
    p.add_argument("--layer", default="counts", help="layer with raw counts (X for plain count files)")
    p.add_argument("--batch", default=None, help="keep only cells of this obs['batch']")
    p.add_argument("--genes", default="all", help="all | hvg | liger | file with gene names")
    p.add_argument("--drop-empty-cells", action="store_true", help="drop cells with no counts in the selected genes")
    p.add_argument("--labels", choices=LABEL_KINDS, default="truth",
                   help="what obs['label'] is: truth (scored), reference (a clustering: NMI/ARI only), none")


def labels_of(adata, label_kind: str):
    """``obs['label']`` as an object array (NaN = unlabelled), or None when there are no labels to use."""
    if label_kind == "none" or "label" not in adata.obs:
        return None
    return adata.obs["label"].astype(object).where(adata.obs["label"].notna(), None).to_numpy()


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
