#!/usr/bin/env python
"""Prior-masked GRN for one cell-state transition A -> B (seed 003): masked linear + masked MLP.

Cells of state A are paired with cells of state B (random or optimal-transport pairing); the log
expression of prior targets in B is regressed on the standardised expression of prior TFs in A, with
weights only on prior TF -> target edges. Writes the signed edge table, the weight matrix (.npz),
held-out R2 per target and a metrics table (R2 of the linear model, the MLP and the mean baseline,
sign agreement with the prior, pairing cost).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from scfactor.core import cli, io  # noqa: E402
from scfactor.preprocess import contract  # noqa: E402
from scfactor import grn_inputs as gi  # noqa: E402
from scfactor.core.device import TORCH_CHOICES, torch_device  # noqa: E402
from scfactor.core.errors import InputError, ScfactorError  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="preprocessed .h5ad (log-normalised X, obs label/batch)")
    p.add_argument("--prior", required=True, help="prior network: DoRothEA .csv or TRRUST .tsv")
    p.add_argument("--prior-format", default="auto", choices=gi.PRIOR_FORMATS)
    p.add_argument("--confidence", nargs="+", default=["A", "B", "C"], help="DoRothEA confidence levels kept")
    p.add_argument("--name", default="transition", help="transition name recorded in the outputs")
    p.add_argument("--label-key", default="label", help="obs column holding the cell-state labels")
    p.add_argument("--source-labels", nargs="*", default=[], help="labels of state A (empty: any)")
    p.add_argument("--source-batches", nargs="*", default=[], help="batches of state A (empty: any)")
    p.add_argument("--target-labels", nargs="*", default=[], help="labels of state B (empty: any)")
    p.add_argument("--target-batches", nargs="*", default=[], help="batches of state B (empty: any)")
    p.add_argument("--fill-unlabelled", default="none", choices=["none", "knn"],
                   help="knn: give unlabelled cells the majority label of their labelled PCA neighbours")
    p.add_argument("--knn-k", type=int, default=15)
    p.add_argument("--knn-min-agreement", type=float, default=0.6)
    p.add_argument("--genes", default="hvg", help="target pool: all | hvg | liger | file of gene names")
    p.add_argument("--min-frac", type=float, default=0.05,
                   help="TFs (targets) must be detected in this fraction of source (target) cells")
    p.add_argument("--pairing", default="ot", choices=gi.PAIRINGS)
    p.add_argument("--n-pairs", type=int, default=0, help="cap on the number of cell pairs (0: min(|A|, |B|))")
    p.add_argument("--n-pcs", type=int, default=30, help="PCs for OT pairing and label transfer")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction of the pairs")
    p.add_argument("--l1", type=float, default=0.01, help="lasso penalty of the masked linear model (without --l1-grid)")
    p.add_argument("--l1-grid", type=float, nargs="*", default=[],
                   help="choose the lasso penalty per target from these values by cross-validation on the training pairs")
    p.add_argument("--cv-folds", type=int, default=3, help="folds of the --l1-grid cross-validation")
    p.add_argument("--l2", type=float, default=0.01, help="ridge penalty of the masked linear model")
    p.add_argument("--max-iter", type=int, default=3000, help="FISTA iterations (masked linear)")
    p.add_argument("--tol", type=float, default=1e-6, help="FISTA relative weight-change tolerance")
    p.add_argument("--mlp-hidden", type=int, default=4, help="hidden units per target of the masked MLP (0: skip)")
    p.add_argument("--mlp-epochs", type=int, default=200)
    p.add_argument("--mlp-lr", type=float, default=0.01)
    p.add_argument("--mlp-l2", type=float, default=1e-3)
    p.add_argument("--expected-tfs", nargs="*", default=[],
                   help="TFs expected to drive the transition (reported: their share of the top edges)")
    p.add_argument("--top-edges", type=int, default=50, help="number of strongest edges for the expected-TF check")
    p.add_argument("--device", default="auto", choices=TORCH_CHOICES)
    p.add_argument("--edges", required=True, help="output edge table .tsv")
    p.add_argument("--weights", required=True, help="output weight matrix and test predictions .npz")
    p.add_argument("--r2", required=True, help="output held-out R2 per target .tsv")
    p.add_argument("--metrics", required=True, help="output metrics .tsv")
    return p


def check_args(args):
    """Option ranges (one-line errors)."""
    if not 0 < args.test_fraction < 1:
        raise ScfactorError(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
    if args.l1 < 0 or args.l2 < 0 or any(v < 0 for v in args.l1_grid):
        raise ScfactorError("--l1, --l1-grid and --l2 must be >= 0")
    if args.cv_folds < 2:
        raise ScfactorError(f"--cv-folds must be >= 2, got {args.cv_folds}")
    if not args.source_labels and not args.source_batches:
        raise ScfactorError("state A needs --source-labels and/or --source-batches")
    if not args.target_labels and not args.target_batches:
        raise ScfactorError("state B needs --target-labels and/or --target-batches")


def load_states(args):
    """The preprocessed data, the cells of A and B, and the label series used."""
    adata = io.read_h5ad(args.input)
    io.validate_names(adata, args.input)
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(args.input, f"is empty ({adata.n_obs} cells x {adata.n_vars} genes)")
    labels = None
    if args.source_labels or args.target_labels:
        if args.label_key not in adata.obs:
            raise InputError(args.input, f"has no obs[{args.label_key!r}] to select cell states by label")
        adata.obs["label"] = adata.obs[args.label_key]
        labels = adata.obs["label"].astype(object)
        if args.fill_unlabelled == "knn":
            before = int(labels.notna().sum())
            labels = gi.transfer_labels(adata, k=args.knn_k, n_pcs=args.n_pcs,
                                        min_agreement=args.knn_min_agreement, seed=args.seed)
            cli.LOG.info("kNN label transfer: %d of %d unlabelled cells labelled", int(labels.notna().sum()) - before,
                         adata.n_obs - before)
    a = gi.StateSpec("A", tuple(args.source_labels), tuple(args.source_batches))
    b = gi.StateSpec("B", tuple(args.target_labels), tuple(args.target_batches))
    in_a = gi.select_state(adata.obs, a, args.input, labels)
    in_b = gi.select_state(adata.obs, b, args.input, labels)
    overlap = int((in_a & in_b).sum())
    if overlap:
        raise InputError(args.input, f"{a.describe()} and {b.describe()} share {overlap} cells")
    for spec, sel in ((a, in_a), (b, in_b)):
        if sel.sum() < 10:
            raise InputError(args.input, f"{spec.describe()} has only {int(sel.sum())} cells (need >= 10)")
    x = adata.X
    v = io.matrix_values(x)
    if v.dtype.kind == "f" and not np.isfinite(v).all():
        raise InputError(args.input, "X has NaN or infinite values")
    return adata, in_a, in_b, labels


def target_pool(adata, genes, path):
    """Names of the genes allowed as targets."""
    if genes == "all":
        return None
    return contract.select_genes(adata, genes, path).var_names


def dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    check_args(args)
    log = cli.LOG

    # ---- validate every input before any output is written
    prior = gi.read_prior(args.prior, args.prior_format, args.confidence)
    adata, in_a, in_b, labels = load_states(args)
    log.info("%s: state A %d cells, state B %d cells (of %d)", args.name, in_a.sum(), in_b.sum(), adata.n_obs)
    pool = target_pool(adata, args.genes, args.input)
    genes = gi.regression_genes(prior, adata.var_names, adata.X[in_a], adata.X[in_b], args.prior, args.input,
                                target_pool=pool, min_frac=args.min_frac)
    log.info("prior: %d edges; model: %d TFs -> %d targets, %d masked edges", len(prior), len(genes.tfs),
             len(genes.targets), int(genes.mask.sum()))

    import torch  # after input validation: a bad input fails fast, without loading torch
    from scfactor.models import grn as models
    torch.set_num_threads(max(1, args.threads))
    device = torch_device(args.device)

    # ---- pairing on a joint PCA of A and B
    both = adata[in_a | in_b]
    z = gi.state_pca(both, args.n_pcs, args.seed)
    za, zb = z[in_a[in_a | in_b]], z[in_b[in_a | in_b]]
    ia, ib = gi.pair_cells(za, zb, args.pairing, args.n_pairs, args.seed)
    ra, rb = gi.pair_cells(za, zb, "random", args.n_pairs, args.seed)
    cost, cost_random = gi.pair_cost(za, zb, ia, ib), gi.pair_cost(za, zb, ra, rb)
    log.info("%s pairing: %d pairs, mean squared PCA distance %.2f (random pairing %.2f)",
             args.pairing, len(ia), cost, cost_random)
    n = len(ia)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(n)
    n_test = max(1, int(round(args.test_fraction * n)))
    if n - n_test < 5:
        raise InputError(args.input, f"only {n} cell pairs: too few to hold out {n_test} and fit on the rest")
    tr, te = np.sort(order[n_test:]), np.sort(order[:n_test])

    var = pd.Index(adata.var_names)
    x_a = dense(adata.X[np.flatnonzero(in_a)][:, var.get_indexer(genes.tfs)]).astype(np.float64)
    y_b = dense(adata.X[np.flatnonzero(in_b)][:, var.get_indexer(genes.targets)]).astype(np.float64)
    x_tr, mu, sd = models.standardise(x_a[ia[tr]])
    x_te, _, _ = models.standardise(x_a[ia[te]], mu, sd)
    y_tr, y_te = y_b[ib[tr]], y_b[ib[te]]

    # ---- models
    l1 = args.l1
    if args.l1_grid:
        l1, _ = models.cv_l1(x_tr, y_tr, genes.mask, args.l1_grid, l2=args.l2, folds=args.cv_folds, seed=args.seed,
                             max_iter=args.max_iter, tol=args.tol, device=device)
        vals, cnt = np.unique(l1, return_counts=True)
        log.info("cross-validated l1 per target: %s", ", ".join(f"{v:g} x{c}" for v, c in zip(vals, cnt)))
    lin, fit = models.fit_masked_linear(x_tr, y_tr, genes.mask, l1=l1, l2=args.l2, max_iter=args.max_iter,
                                        tol=args.tol, device=device)
    log.info("masked linear: %d FISTA iterations (%s), objective %.6g, %.2f s", fit.iterations,
             "converged" if fit.converged else "not converged", fit.objective, fit.seconds)
    weight = lin.weight().detach().cpu().numpy()
    bias = lin.bias.detach().cpu().numpy()
    pred_lin = models.predict(lin, x_te)
    preds = {"linear": pred_lin, "mean_baseline": np.broadcast_to(y_tr.mean(0), y_te.shape)}
    mlp_fit = None
    if args.mlp_hidden > 0:
        mlp, mlp_fit = models.fit_masked_mlp(x_tr, y_tr, genes.mask, hidden=args.mlp_hidden, epochs=args.mlp_epochs,
                                             lr=args.mlp_lr, l2=args.mlp_l2, seed=args.seed, device=device)
        preds["mlp"] = models.predict(mlp, x_te)
    r2 = {k: models.r2_per_target(y_te, p) for k, p in preds.items()}

    # ---- tables
    signs = models.sign_agreement(weight, genes.prior_sign, genes.mask)
    edges = edge_table(genes, weight)
    r2_tab = pd.DataFrame({"target": genes.targets, "n_prior_tfs": genes.mask.sum(0),
                           "l1": np.broadcast_to(np.asarray(l1, dtype=np.float64), (len(genes.targets),)),
                           "n_nonzero_tfs": (weight != 0).sum(0),
                           **{f"r2_{k}": v for k, v in r2.items()}})
    metrics = metrics_table(args, genes, weight, r2, signs, edges, fit, mlp_fit,
                            dict(n_a=int(in_a.sum()), n_b=int(in_b.sum()), n_pairs=n, n_train=len(tr),
                                 n_test=len(te), cost=cost, cost_random=cost_random, l1=l1))
    for k, v in r2.items():
        log.info("held-out R2 %s: median %.4f, %.1f%% of targets > 0", k, np.nanmedian(v), 100 * np.nanmean(v > 0))
    log.info("sign agreement with prior: %.3f over %d signed edges (chance %.3f)", signs["agreement"],
             signs["n_signed_edges"], signs["chance"])

    io.write_table(edges, args.edges)
    io.write_table(r2_tab.round(6), args.r2)
    io.write_table(metrics, args.metrics)
    with io.atomic_output(args.weights) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, weight=weight.astype(np.float32), mask=genes.mask, prior_sign=genes.prior_sign,
                                bias=bias, tfs=genes.tfs, targets=genes.targets, tf_mean=mu, tf_sd=sd,
                                y_test=y_te.astype(np.float32),
                                **{f"pred_{k}": np.asarray(p, dtype=np.float32) for k, p in preds.items()},
                                **{f"r2_{k}": v for k, v in r2.items()}, transition=np.array(args.name))
    log.info("wrote %s, %s, %s, %s", args.edges, args.weights, args.r2, args.metrics)
    return 0


def edge_table(genes, weight) -> pd.DataFrame:
    """All prior edges of the model: tf, target, weight, sign, prior_sign; strongest first."""
    r, c = np.nonzero(genes.mask)
    w = weight[r, c].astype(np.float64)
    df = pd.DataFrame({"tf": genes.tfs[r], "target": genes.targets[c], "weight": np.round(w, 6),
                       "sign": np.sign(np.round(w, 6)).astype(int), "prior_sign": genes.prior_sign[r, c].astype(int)})
    df["_abs"] = -df["weight"].abs()
    return df.sort_values(["_abs", "tf", "target"], kind="mergesort").drop(columns="_abs").reset_index(drop=True)


def metrics_table(args, genes, weight, r2, signs, edges, fit, mlp_fit, counts) -> pd.DataFrame:
    """Long table: transition, model, metric, value."""
    rows = []

    def add(model, metric, value):
        rows.append({"transition": args.name, "model": model, "metric": metric, "value": value})

    add("data", "n_cells_source", counts["n_a"])
    add("data", "n_cells_target", counts["n_b"])
    add("data", "n_pairs_train", counts["n_train"])
    add("data", "n_pairs_test", counts["n_test"])
    add("data", "n_tfs", len(genes.tfs))
    add("data", "n_targets", len(genes.targets))
    add("data", "n_prior_edges", int(genes.mask.sum()))
    add("pairing", f"mean_sq_pca_distance_{args.pairing}", round(counts["cost"], 6))
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
    if args.expected_tfs:
        top = edges[edges["weight"] != 0].head(args.top_edges)
        strength = edges.assign(a=edges["weight"].abs()).groupby("tf")["a"].sum().sort_values(ascending=False)
        present = [t for t in args.expected_tfs if t in strength.index]
        share = float(top["tf"].isin(args.expected_tfs).mean()) if len(top) else float("nan")
        base = float(edges["tf"].isin(args.expected_tfs).mean())
        add("linear", "expected_tfs_in_model", len(present))
        add("linear", f"expected_tf_share_top{args.top_edges}", round(share, 6))
        add("linear", "expected_tf_share_prior", round(base, 6))
        ranks = [int(strength.index.get_loc(t)) + 1 for t in present]
        add("linear", "expected_tf_best_rank", min(ranks) if ranks else -1)
    return pd.DataFrame(rows, dtype=object)


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
