#!/usr/bin/env python
"""GRN benchmark: random vs optimal-transport pairing, masked linear vs masked MLP, FISTA vs the notebook's Adam.

Part 1 runs the grn step (`scfactor.grn.cli.grn`, in-process) for every transition of a config with
``--pairing random`` and ``--pairing ot`` on the preprocessed data (run the workflow's preprocess
step first) and collects the held-out R2 / sign-agreement metrics.
Part 2 fits the same masked lasso objective on a simulated planted network with FISTA (ours) and with
the cell-state GRN notebook's optimiser (Adam on MSE + lambda * L1 norm, 1000 epochs) and reports time,
objective, exact zeros and sign recovery.

    python benchmarks/grn/compare.py --config config/config.yaml
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scfactor.grn.smk import grn_command, grn_prior_path  # noqa: E402


def load_config(path):
    from snakemake.utils import validate
    cfg = yaml.safe_load(Path(path).read_text())
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"), set_default=True)
    cfg.setdefault("grn", {})
    validate(cfg["grn"], str(REPO / "workflow/schemas/grn.schema.yaml"), set_default=True)
    return cfg


def run_pairings(cfg, out: Path) -> pd.DataFrame:
    from scfactor.core.cli import run
    from scfactor.grn.cli import grn
    rows = []
    for name, t in cfg["grn"]["transitions"].items():
        h5 = REPO / cfg["results"] / "preprocess" / f"{t['dataset']}.h5ad"
        for pairing in ("random", "ot"):
            d = out / f"{name}.{pairing}"
            d.mkdir(parents=True, exist_ok=True)
            argv = shlex.split(grn_command(cfg, name)) + [
                "--input", str(h5), "--prior-file", str(REPO / grn_prior_path(cfg, name)), "--name", name,
                "--pairing", pairing,
                "--edges", str(d / "edges.tsv"), "--weights", str(d / "w.npz"), "--r2", str(d / "r2.tsv"),
                "--metrics", str(d / "metrics.tsv")]
            t0 = time.time()
            assert run(grn, argv) == 0, (name, pairing)
            m = pd.read_csv(d / "metrics.tsv", sep="\t")
            v = {f"{r.model}:{r.metric}": r.value for r in m.itertuples()}
            rows.append({"transition": name, "pairing": pairing, "pairs": v["data:n_pairs_train"] + v["data:n_pairs_test"],
                         "r2_median_linear": v["linear:r2_median"], "r2_median_mlp": v.get("mlp:r2_median"),
                         "r2_median_mean_baseline": v["mean_baseline:r2_median"],
                         "frac_r2_pos_linear": v["linear:frac_targets_r2_positive"],
                         "frac_r2_pos_mlp": v.get("mlp:frac_targets_r2_positive"),
                         "nonzero_edges": v["linear:n_nonzero_edges"], "sign_agreement": v["linear:sign_agreement"],
                         "sign_chance": v["linear:sign_chance"], "sign_pvalue": v["linear:sign_pvalue"],
                         "seconds": round(time.time() - t0, 1)})
    return pd.DataFrame(rows)


def run_seed_style(cfg, epochs=1000, n_samples=1000, seed=42) -> pd.DataFrame:
    """The notebook's recipe on the same states, genes and prior: random pairs drawn with replacement,
    raw log expression, no bias, Adam(lr=0.01) on MSELoss + 0.001 * L1 norm ("ridge_lambda") from torch.rand
    initial weights; held-out R2 on a second, independent draw of random pairs."""
    import torch
    from scfactor.core import io
    from scfactor.grn import inputs as gi
    from scfactor.grn import model as models
    from scfactor.preprocess import contract
    rows = []
    for name, t in cfg["grn"]["transitions"].items():
        h5 = REPO / cfg["results"] / "preprocess" / f"{t['dataset']}.h5ad"
        a = io.read_h5ad(h5)
        a.obs["label"] = a.obs[t.get("label_key", "label")]
        labels = a.obs["label"].astype(object)
        if t.get("fill_unlabelled") == "knn":
            labels = gi.transfer_labels(a, k=cfg["grn"]["knn"]["k"], n_pcs=cfg["grn"]["n_pcs"],
                                        min_agreement=cfg["grn"]["knn"]["min_agreement"], seed=cfg["grn"]["seed"])
        sa = gi.StateSpec("A", tuple(t["source"]["labels"]), tuple(t["source"]["batches"]))
        sb = gi.StateSpec("B", tuple(t["target"]["labels"]), tuple(t["target"]["batches"]))
        in_a, in_b = gi.select_state(a.obs, sa, h5, labels), gi.select_state(a.obs, sb, h5, labels)
        prior = gi.read_prior(REPO / grn_prior_path(cfg, name))
        pool = None if cfg["grn"]["genes"] == "all" else contract.select_genes(a, cfg["grn"]["genes"], h5).var_names
        genes = gi.regression_genes(prior, a.var_names, a.X[in_a], a.X[in_b], "prior", h5, target_pool=pool,
                                    min_frac=cfg["grn"]["min_frac"])
        var = pd.Index(a.var_names)
        xa = a.X[np.flatnonzero(in_a)][:, var.get_indexer(genes.tfs)].toarray().astype(np.float64)
        yb = a.X[np.flatnonzero(in_b)][:, var.get_indexer(genes.targets)].toarray().astype(np.float64)
        rng = np.random.default_rng(seed)
        draw = [(rng.integers(0, len(xa), n_samples), rng.integers(0, len(yb), n_samples)) for _ in range(2)]
        (ia, ib), (ja, jb) = draw
        torch.manual_seed(seed)
        lin = models.MaskedLinear(genes.mask, dtype=torch.float32)
        with torch.no_grad():
            lin.values.uniform_(0, 1)
        lin.bias.requires_grad_(False)                  # the notebook has no bias term
        opt = torch.optim.Adam([lin.values], lr=0.01)
        x, y = torch.as_tensor(xa[ia], dtype=torch.float32), torch.as_tensor(yb[ib], dtype=torch.float32)
        for _ in range(epochs):
            opt.zero_grad()
            loss = ((lin(x) - y) ** 2).mean() + 0.001 * lin.values.abs().sum()
            loss.backward()
            opt.step()
        r2 = models.r2_per_target(yb[jb], models.predict(lin, xa[ja]))
        w = lin.weight().detach().numpy()
        agree = models.sign_agreement(w, genes.prior_sign, genes.mask)
        rows.append({"transition": name, "recipe": "cell-state GRN notebook (random pairs with replacement, no bias, "
                     "Adam + 0.001 L1)", "r2_median": float(np.nanmedian(r2)),
                     "frac_r2_pos": float(np.nanmean(r2 > 0)), "sign_agreement": agree["agreement"],
                     "sign_chance": agree["chance"]})
    return pd.DataFrame(rows)


def run_optimisers(seed=0, n=1000, p=100, t=1000, l1=0.02) -> pd.DataFrame:
    """FISTA (tol 1e-8) and the notebook's Adam (1000 epochs) on one planted problem (`optimisers`), in this
    process; for the CPU-time comparison run bench_optimiser.py."""
    from optimisers import fit_adam, fit_fista, objective, planted_problem, recovery
    prob = planted_problem(seed, n, p, t)
    rows = []
    for name, fit in (("FISTA (ours, bias, exact prox)", lambda: fit_fista(prob, l1, tol=1e-8, max_iter=10000)),
                      ("Adam 1000 epochs (the notebook's optimiser)", lambda: fit_adam(prob, l1, 1000, seed))):
        t0 = time.time()
        w, b, iters = fit()
        rows.append({"optimiser": name, "seconds": round(time.time() - t0, 3), "iterations": iters,
                     "objective": objective(prob, w, b, l1), **recovery(prob, w)})
    df = pd.DataFrame(rows)
    df.insert(0, "problem", f"n={n} cells, {p} TFs, {t} targets, {int(prob['mask'].sum())} prior edges, l1={l1}")
    return df


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "config/config.yaml"))
    ap.add_argument("--out", default=str(REPO / "benchmarks/out/grn"))
    ap.add_argument("--results", default=str(REPO / "benchmarks/results"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    opt = run_optimisers()
    opt.to_csv(res / "grn_optimiser.tsv", sep="\t", index=False)
    seedstyle = run_seed_style(cfg)
    seedstyle.to_csv(res / "grn_seed_recipe.tsv", sep="\t", index=False)
    pairs = run_pairings(cfg, Path(args.out))
    pairs.to_csv(res / "grn_pairing.tsv", sep="\t", index=False)
    with open(res / "grn.md", "w") as f:
        shown = Path(args.config).resolve().relative_to(REPO) if Path(args.config).resolve().is_relative_to(REPO) else args.config
        f.write(f"# GRN benchmark\n\nCommand: `python benchmarks/grn/compare.py --config {shown}` "
                f"(threads={args.threads}).\n\n## Pairing and models (held-out R2 per target, sign agreement)\n\n")
        f.write(pairs.to_markdown(index=False, floatfmt=".4g") + "\n\n## Optimiser: same masked lasso objective\n\n")
        f.write(opt.to_markdown(index=False, floatfmt=".6g") + "\n\n## The cell-state GRN notebook's recipe on the same "
                "states, genes and prior (held-out R2 on independent random pairs)\n\n")
        f.write(seedstyle.to_markdown(index=False, floatfmt=".4g") + "\n")
    print(pairs.to_string(), "\n", opt.to_string(), "\n", seedstyle.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
