"""The GRN steps' logic: one transition A -> B (`infer_grn`), its arrays read back for the figures
(`load_weights`), and the metrics of all transitions in one table (`summarise`).

`infer_grn` pairs cells of state A with cells of state B (random or optimal-transport pairing) and
regresses the log expression of prior targets in B on the standardised expression of prior TFs in A,
with weights only on prior TF -> target edges (masked linear model and masked MLP, `scfactor.grn.model`).
It returns the signed edge table, held-out R2 per target, a metrics table (R2 of the linear model, the
MLP and the mean baseline, sign agreement with the prior, pairing cost) and the arrays of ``weights.npz``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core import io
from ..core.device import torch_device
from ..core.errors import InputError, ScfactorError
from ..core.log import LOG
from ..core.metrics import label_strings
from ..preprocess import contract
from . import inputs as gi

#: arrays a ``weights.npz`` must hold for the figures
REQUIRED = ("weight", "mask", "prior_sign", "tfs", "targets", "y_test", "pred_linear", "r2_linear", "transition")
#: columns of a per-transition metrics table
METRIC_COLUMNS = ["transition", "model", "metric", "value"]


@dataclass
class GrnResult:
    """The outputs of one transition: edge table, per-target R2 table, metrics table, ``weights.npz`` arrays."""

    edges: pd.DataFrame
    r2: pd.DataFrame
    metrics: pd.DataFrame
    arrays: dict


def check_states(opts) -> None:
    """Each state must be defined by labels and/or batches (one-line error otherwise)."""
    if not opts.source_labels and not opts.source_batches:
        raise ScfactorError("state A needs --source-labels and/or --source-batches")
    if not opts.target_labels and not opts.target_batches:
        raise ScfactorError("state B needs --target-labels and/or --target-batches")


def load_states(path, opts):
    """The preprocessed data at ``path``, the masks of the cells of A and B, and the label series used."""
    adata = io.read_h5ad(path)
    io.validate_names(adata, path)
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(path, f"is empty ({adata.n_obs} cells x {adata.n_vars} genes)")
    labels = None
    if opts.source_labels or opts.target_labels:
        if opts.label_key not in adata.obs:
            raise InputError(path, f"has no obs[{opts.label_key!r}] to select cell states by label")
        # labels as text (None = unlabelled): integer codes match the labels of the config
        adata.obs["label"] = pd.Series(label_strings(adata.obs[opts.label_key]), index=adata.obs_names,
                                       dtype=object)
        labels = adata.obs["label"]
        if opts.fill_unlabelled == "knn":
            before = int(labels.notna().sum())
            labels = gi.transfer_labels(adata, k=opts.knn_k, n_pcs=opts.n_pcs,
                                        min_agreement=opts.knn_min_agreement, seed=opts.seed)
            LOG.info("kNN label transfer: %d of %d unlabelled cells labelled", int(labels.notna().sum()) - before,
                     adata.n_obs - before)
    a = gi.StateSpec("A", tuple(opts.source_labels), tuple(opts.source_batches))
    b = gi.StateSpec("B", tuple(opts.target_labels), tuple(opts.target_batches))
    in_a = gi.select_state(adata.obs, a, path, labels)
    in_b = gi.select_state(adata.obs, b, path, labels)
    overlap = int((in_a & in_b).sum())
    if overlap:
        raise InputError(path, f"{a.describe()} and {b.describe()} share {overlap} cells")
    for spec, sel in ((a, in_a), (b, in_b)):
        if sel.sum() < 10:
            raise InputError(path, f"{spec.describe()} has only {int(sel.sum())} cells (need >= 10)")
    v = io.matrix_values(adata.X)
    if v.dtype.kind == "f" and not np.isfinite(v).all():
        raise InputError(path, "X has NaN or infinite values")
    return adata, in_a, in_b, labels


def target_pool(adata, genes: str, path):
    """Names of the genes allowed as targets (None: all genes)."""
    if genes == "all":
        return None
    return contract.select_genes(adata, genes, path).var_names


def _dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def infer_grn(input_path, prior_path, opts, name: str, threads: int = 1) -> GrnResult:
    """Fit the prior-masked GRN of one transition; ``opts`` is `scfactor.grn.cli.GRN`'s options object.

    Every input is validated (prior, states, genes) before torch is loaded or anything is fitted.
    """
    check_states(opts)
    prior = gi.read_prior(prior_path, opts.prior, opts.confidence)
    adata, in_a, in_b, labels = load_states(input_path, opts)
    adata = gi.symbols_as_names(adata, input_path)
    prior = gi.match_prior_names(prior, adata.var_names, opts.match_case, prior_path, input_path)
    LOG.info("%s: state A %d cells, state B %d cells (of %d)", name, in_a.sum(), in_b.sum(), adata.n_obs)
    pool = target_pool(adata, opts.genes, input_path)
    genes = gi.regression_genes(prior, adata.var_names, adata.X[in_a], adata.X[in_b], prior_path, input_path,
                                target_pool=pool, min_frac=opts.min_frac)
    LOG.info("prior: %d edges; model: %d TFs -> %d targets, %d masked edges", len(prior), len(genes.tfs),
             len(genes.targets), int(genes.mask.sum()))

    import torch  # after input validation: a bad input fails fast, without loading torch
    from . import model as models
    torch.set_num_threads(max(1, threads))
    device = torch_device(opts.device)

    # ---- pairing on a joint PCA of A and B
    both = adata[in_a | in_b]
    z = gi.state_pca(both, opts.n_pcs, opts.seed)
    za, zb = z[in_a[in_a | in_b]], z[in_b[in_a | in_b]]
    ia, ib = gi.pair_cells(za, zb, opts.pairing, opts.n_pairs, opts.seed)
    ra, rb = gi.pair_cells(za, zb, "random", opts.n_pairs, opts.seed)
    cost, cost_random = gi.pair_cost(za, zb, ia, ib), gi.pair_cost(za, zb, ra, rb)
    LOG.info("%s pairing: %d pairs, mean squared PCA distance %.2f (random pairing %.2f)",
             opts.pairing, len(ia), cost, cost_random)
    n = len(ia)
    rng = np.random.default_rng(opts.seed)
    order = rng.permutation(n)
    n_test = max(1, int(round(opts.test_fraction * n)))
    if n - n_test < 5:
        raise InputError(input_path, f"only {n} cell pairs: too few to hold out {n_test} and fit on the rest")
    tr, te = np.sort(order[n_test:]), np.sort(order[:n_test])

    var = pd.Index(adata.var_names)
    x_a = _dense(adata.X[np.flatnonzero(in_a)][:, var.get_indexer(genes.tfs)]).astype(np.float64)
    y_b = _dense(adata.X[np.flatnonzero(in_b)][:, var.get_indexer(genes.targets)]).astype(np.float64)
    x_tr, mu, sd = models.standardise(x_a[ia[tr]])
    x_te, _, _ = models.standardise(x_a[ia[te]], mu, sd)
    y_tr, y_te = y_b[ib[tr]], y_b[ib[te]]

    # ---- models
    l1 = opts.l1
    if opts.l1_grid:
        l1, _ = models.cv_l1(x_tr, y_tr, genes.mask, opts.l1_grid, l2=opts.l2, folds=opts.cv_folds, seed=opts.seed,
                             max_iter=opts.max_iter, tol=opts.tol, device=device)
        vals, cnt = np.unique(l1, return_counts=True)
        LOG.info("cross-validated l1 per target: %s", ", ".join(f"{v:g} x{c}" for v, c in zip(vals, cnt)))
    lin, fit = models.fit_masked_linear(x_tr, y_tr, genes.mask, l1=l1, l2=opts.l2, max_iter=opts.max_iter,
                                        tol=opts.tol, device=device)
    LOG.info("masked linear: %d FISTA iterations (%s), objective %.6g, %.2f s", fit.iterations,
             "converged" if fit.converged else "not converged", fit.objective, fit.seconds)
    weight = lin.weight().detach().cpu().numpy()
    bias = lin.bias.detach().cpu().numpy()
    preds = {"linear": models.predict(lin, x_te), "mean_baseline": np.broadcast_to(y_tr.mean(0), y_te.shape)}
    mlp_fit = None
    if opts.mlp_hidden > 0:
        mlp, mlp_fit = models.fit_masked_mlp(x_tr, y_tr, genes.mask, hidden=opts.mlp_hidden, epochs=opts.mlp_epochs,
                                             lr=opts.mlp_lr, l2=opts.mlp_l2, seed=opts.seed, device=device)
        preds["mlp"] = models.predict(mlp, x_te)
    r2 = {k: models.r2_per_target(y_te, p) for k, p in preds.items()}

    # ---- tables
    signs = models.sign_agreement(weight, genes.prior_sign, genes.mask)
    edges = edge_table(genes, weight)
    r2_tab = pd.DataFrame({"target": genes.targets, "n_prior_tfs": genes.mask.sum(0),
                           "l1": np.broadcast_to(np.asarray(l1, dtype=np.float64), (len(genes.targets),)),
                           "n_nonzero_tfs": (weight != 0).sum(0),
                           **{f"r2_{k}": v for k, v in r2.items()}})
    metrics = metrics_table(name, opts, genes, weight, r2, signs, edges, fit, mlp_fit,
                            dict(n_a=int(in_a.sum()), n_b=int(in_b.sum()), n_pairs=n, n_train=len(tr),
                                 n_test=len(te), cost=cost, cost_random=cost_random, l1=l1))
    for k, v in r2.items():
        LOG.info("held-out R2 %s: median %.4f, %.1f%% of targets > 0", k, np.nanmedian(v), 100 * np.nanmean(v > 0))
    LOG.info("sign agreement with prior: %.3f over %d signed edges (chance %.3f)", signs["agreement"],
             signs["n_signed_edges"], signs["chance"])
    arrays = dict(weight=weight.astype(np.float32), mask=genes.mask, prior_sign=genes.prior_sign,
                  bias=bias, tfs=genes.tfs, targets=genes.targets, tf_mean=mu, tf_sd=sd,
                  y_test=y_te.astype(np.float32),
                  **{f"pred_{k}": np.asarray(p, dtype=np.float32) for k, p in preds.items()},
                  **{f"r2_{k}": v for k, v in r2.items()}, transition=np.array(name))
    return GrnResult(edges, r2_tab.round(6), metrics, arrays)


def edge_table(genes, weight) -> pd.DataFrame:
    """All prior edges of the model: tf, target, weight, sign, prior_sign; strongest first."""
    r, c = np.nonzero(genes.mask)
    w = weight[r, c].astype(np.float64)
    df = pd.DataFrame({"tf": genes.tfs[r], "target": genes.targets[c], "weight": np.round(w, 6),
                       "sign": np.sign(np.round(w, 6)).astype(int), "prior_sign": genes.prior_sign[r, c].astype(int)})
    df["_abs"] = -df["weight"].abs()
    return df.sort_values(["_abs", "tf", "target"], kind="mergesort").drop(columns="_abs").reset_index(drop=True)


def metrics_table(name, opts, genes, weight, r2, signs, edges, fit, mlp_fit, counts) -> pd.DataFrame:
    """Long table: transition, model, metric, value."""
    rows = []

    def add(model, metric, value):
        rows.append({"transition": name, "model": model, "metric": metric, "value": value})

    add("data", "n_cells_source", counts["n_a"])
    add("data", "n_cells_target", counts["n_b"])
    add("data", "n_pairs_train", counts["n_train"])
    add("data", "n_pairs_test", counts["n_test"])
    add("data", "n_tfs", len(genes.tfs))
    add("data", "n_targets", len(genes.targets))
    add("data", "n_prior_edges", int(genes.mask.sum()))
    add("pairing", f"mean_sq_pca_distance_{opts.pairing}", round(counts["cost"], 6))
    add("pairing", "mean_sq_pca_distance_random", round(counts["cost_random"], 6))
    for model, v in r2.items():
        add(model, "r2_median", round(float(np.nanmedian(v)), 6))
        add(model, "r2_mean", round(float(np.nanmean(v)), 6))
        add(model, "frac_targets_r2_positive", round(float(np.nanmean(v > 0)), 6))
    add("linear", "n_nonzero_edges", int((weight != 0).sum()))
    add("linear", "n_targets_without_edges", int(((weight != 0).sum(0) == 0).sum()))
    add("linear", "l1_median", float(np.median(counts["l1"])))
    add("linear", "fista_iterations", fit.iterations)
    add("linear", "fista_converged", int(fit.converged))
    add("linear", "objective", round(fit.objective, 8))
    for k, v in signs.items():
        add("linear", f"sign_{k}" if not k.startswith("n_") else k, round(v, 6) if isinstance(v, float) else v)
    if mlp_fit is not None:
        add("mlp", "final_loss", round(mlp_fit.objective, 6))
    if opts.expected_tfs:
        expected = list(opts.expected_tfs)
        if opts.match_case == "insensitive":  # the model's TFs carry the data's spelling
            by_case = {t.upper(): t for t in edges["tf"].unique()}
            expected = [by_case.get(t.upper(), t) for t in expected]
        top = edges[edges["weight"] != 0].head(opts.top_edges)
        strength = edges.assign(a=edges["weight"].abs()).groupby("tf")["a"].sum().sort_values(ascending=False)
        present = [t for t in expected if t in strength.index]
        share = float(top["tf"].isin(expected).mean()) if len(top) else float("nan")
        base = float(edges["tf"].isin(expected).mean())
        add("linear", "expected_tfs_in_model", len(present))
        add("linear", f"expected_tf_share_top{opts.top_edges}", round(share, 6))
        add("linear", "expected_tf_share_prior", round(base, 6))
        ranks = [int(strength.index.get_loc(t)) + 1 for t in present]
        add("linear", "expected_tf_best_rank", min(ranks) if ranks else -1)
    return pd.DataFrame(rows, dtype=object)


def write_weights(arrays: dict, path) -> None:
    """Write the arrays of `GrnResult` to ``path`` as a compressed ``.npz`` (atomically)."""
    with io.atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def load_weights(path) -> dict:
    """The arrays of a ``weights.npz`` written by the grn step, validated (names and shapes)."""
    io.require_file(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            d = {k: f[k] for k in f.files}
    except Exception as exc:
        raise InputError(path, f"cannot read npz: {str(exc).splitlines()[0]}") from None
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise InputError(path, f"lacks array(s) {', '.join(missing)}; is it a grn.py output?")
    if d["weight"].shape != d["mask"].shape or d["weight"].shape != (len(d["tfs"]), len(d["targets"])):
        raise InputError(path, "weight, mask, tfs and targets have inconsistent shapes")
    return d


def summarise(paths) -> pd.DataFrame:
    """One wide table (transition x ``model:metric``) from the metrics tables at ``paths``."""
    tabs = []
    for path in paths:
        df = io.read_table(path)
        io.require_columns(df, METRIC_COLUMNS, path, "GRN metrics table")
        tabs.append(df)
    long = pd.concat(tabs, ignore_index=True)
    long["column"] = long["model"] + ":" + long["metric"]
    if long.duplicated(["transition", "column"]).any():
        raise InputError(paths[0], "the same transition occurs in more than one metrics file")
    wide = long.pivot(index="transition", columns="column", values="value")
    return wide[list(dict.fromkeys(long["column"]))].reset_index()
