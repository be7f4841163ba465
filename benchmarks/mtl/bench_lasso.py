#!/usr/bin/env python
"""Benchmark: the per-gene lasso baseline (rule mtl_lasso), sklearn's LassoCV vs `scfactor.mtl.lasso_cv`.

Data: one simulated tissue at a config's size (default config/config.yaml + config/paper.yaml merged as `make
paper` merges them: ``simulate.mtl`` with one tissue), its candidate genes for the ``--run`` (velocity in >=
min_cells cells), a seeded ``--genes`` of them, the run's replicate splits, folds, alphas and iterations.
Per gene and replicate both sides fit the same standardised training rows:

* ``sklearn``: ``LassoCV(alphas=n_alphas, cv=cv, max_iter=max_iter).fit`` then ``predict`` (the baseline
  before this change);
* ``gram``: ``scfactor.mtl.lasso_cv.lasso_cv`` (the same solver, grid, folds and rule on Gram sums).

The sides alternate by repeat (``--repeats``), one thread (every pool's variable set to 1 before numpy loads), in
this one process; seconds are the process
CPU clock (and wall) of the fits alone, summed over genes and replicates. Quality: each side's mean test R2,
the share of (gene, replicate) fits that chose the same alpha, and the largest test-R2 difference.
Writes <out>.tsv (one row per side and repeat) and <out>.md, each headed by this command. Run it on an idle
machine:

    python benchmarks/mtl/bench_lasso.py --genes 60 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"  # before numpy/scipy/sklearn load their pools (threadpool_limits misses lazy loads)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "benchmarks" / "mtl"))
sys.path.insert(0, str(REPO / "workflow"))
from bench_shard_cost import merged_config  # noqa: E402
from results_file import checkout_commit, command_line, write_results  # noqa: E402


def sklearn_fit(x, y, xte, cv, n_alphas, max_iter, seed):
    """The baseline as it was: sklearn's LassoCV; (alpha, test predictions)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LassoCV
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = LassoCV(alphas=n_alphas, cv=cv, max_iter=max_iter, random_state=seed).fit(x, y)
    return float(m.alpha_), m.predict(xte)


def gram_fit(x, y, xte, cv, n_alphas, max_iter, seed):
    """The baseline now: `lasso_cv` on Gram sums; (alpha, test predictions)."""
    from scfactor.mtl.lasso_cv import lasso_cv
    alpha, coef, intercept = lasso_cv(x, y, cv, n_alphas, max_iter)
    return alpha, xte @ coef + intercept


SIDES = {"sklearn": sklearn_fit, "gram": gram_fit}


def problems(data, genes, reps, test_ratio, seed, cv):
    """(gene, rep, x_train, y_train, x_test, y_test) of every fit, as `baseline.lasso_gene` builds them."""
    from scfactor.mtl.baseline import lasso_splits
    pos = pd.Index(data.gene_ids).get_indexer(pd.Index(genes))
    expr = data.expr.astype(np.float64)
    return [(g, *split) for g, p in zip(genes, pos)
            for split in lasso_splits(expr, data.velo[:, p].astype(np.float64), reps, test_ratio, seed, cv)
            if split[1] is not None]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["config/config.yaml", "config/paper.yaml"],
                   help="config files, merged in this order (as `make paper` passes them)")
    p.add_argument("--run", default="sim", help="the mtl.datasets run whose gene filter and splits are used")
    p.add_argument("--genes", type=int, default=60, help="seeded subset of the tissue's candidate genes")
    p.add_argument("--repeats", type=int, default=3, help="runs per side (sides alternate)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "mtl_lasso"))
    args = p.parse_args(argv)
    command = command_line(__file__)

    from scfactor.mtl import baseline
    from scfactor.mtl import layout as L
    from scfactor.mtl.cli import SIMULATE
    from scfactor.mtl.data import r2_score
    from scfactor.mtl.simulate import simulate_layout
    from scfactor.mtl.smk import resolved
    cfg = merged_config(args.configs)
    mtl, lasso = resolved(cfg, args.run), cfg["mtl"]["lasso"]
    with tempfile.TemporaryDirectory() as tmp:
        root = simulate_layout(Path(tmp) / "layout", SIMULATE.defaults(**dict(cfg["simulate"]["mtl"], n_tissues=1)))
        data = L.load_tissue(root, "tissue1")
    genes = baseline.candidate_genes(data, int(mtl["min_cells"]))
    rng = np.random.default_rng(int(mtl["seed"]))
    genes = genes[np.sort(rng.choice(len(genes), size=min(args.genes, len(genes)), replace=False))]
    fits = problems(data, genes, range(int(mtl["reps"])), float(mtl["test_ratio"]), int(mtl["seed"]),
                    int(lasso["cv"]))
    opts = (int(lasso["cv"]), int(lasso["n_alphas"]), int(lasso["max_iter"]), int(mtl["seed"]))
    rows, last = [], {}
    for rep in range(args.repeats):
        for side, fit in SIDES.items():
            c0, w0 = time.process_time(), time.perf_counter()
            res = [fit(x, y, xte, *opts) for _, _, x, y, xte, _ in fits]
            rows.append({"side": side, "repeat": rep, "cpu_s": time.process_time() - c0,
                         "wall_s": time.perf_counter() - w0, "load_avg": os.getloadavg()[0]})
            last[side] = ([a for a, _ in res], [r2_score(f[5], pred) for f, (_, pred) in zip(fits, res)])
            print(rows[-1], file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    for side, (alphas, r2) in last.items():
        table.loc[table["side"] == side, "mean_test_r2"] = float(np.mean(r2))
    same_alpha = np.mean(np.isclose(last["sklearn"][0], last["gram"][0], rtol=1e-9, atol=0))
    max_dr2 = float(np.max(np.abs(np.subtract(last["sklearn"][1], last["gram"][1]))))
    med = table.groupby("side", sort=False)[["cpu_s", "wall_s"]].median()
    intro = (f"# Per-gene lasso baseline: sklearn LassoCV vs lasso_cv on Gram sums\n\n"
             f"Checkout {checkout_commit(REPO)}; one simulated tissue as `{' + '.join(args.configs)}` simulate "
             f"it, {len(genes)} of its candidate genes x {mtl['reps']} replicates = {len(fits)} fits of "
             f"{fits[0][2].shape[0]}-{max(f[2].shape[0] for f in fits)} training cells x {fits[0][2].shape[1]} TFs; "
             f"cv {opts[0]}, {opts[1]} alphas, max_iter {opts[2]}; one thread, sides alternating. "
             f"Median CPU s: sklearn {med.loc['sklearn', 'cpu_s']:.2f}, gram {med.loc['gram', 'cpu_s']:.2f} "
             f"(**{med.loc['sklearn', 'cpu_s'] / med.loc['gram', 'cpu_s']:.2f}x** CPU, "
             f"{med.loc['sklearn', 'wall_s'] / med.loc['gram', 'wall_s']:.2f}x wall). Same alpha chosen in "
             f"{same_alpha:.1%} of fits; largest test-R2 difference {max_dr2:.2e}.")
    write_results(args.out, command, table, intro, floatfmt=".4f")
    print(intro)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
