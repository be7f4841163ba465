#!/usr/bin/env python
"""LIGER parity over seeds: is scfactor's downstream gap to pyliger systematic or seed luck?

For every data set of ``parity.py`` and every pyliger seed s, pyliger 0.2.4's whole chain runs with
``optimize_ALS(rand_seed=s)`` (its defaults otherwise: one start, 30 iterations; cached by ``parity.py``'s
`run_pyliger`), and scfactor's quantile normalisation and Leiden (seed s) run on pyliger's own H (is the
downstream at parity on pyliger's fits?). For every scfactor seed s, scfactor's chain (LIGER genes,
scaling, iNMF, quantile normalisation, Leiden on the SNN graph, schema defaults except k, lambda,
resolution) runs under several restart / stopping variants:

* ``nrep`` starts with seeds s, s+1, ... (one iNMF fit per start; so scfactor seeds must be > 5 apart
  to be independent),
* ``max_iters`` / ``thresh`` (the cap and tolerance of every start) and the solver (HALS, the default,
  or exact ANLS, pyliger's algorithm),
* ``keep``: which start is kept: ``objective`` = the lowest final objective; ``consensus`` = the start
  whose joint Leiden clustering agrees most (mean ARI) with the other starts' clusterings
  (`scfactor.integrate.restarts`; start s + r clustered with seed s + r, as the integrate step does).

Each start is fitted and clustered once and shared by the variants that contain it (its objective and
labels cached in ``--work``: they depend only on its seed, cap, tolerance, solver and the data). Output:
per data set and variant, mean / min / max over the seeds of ARI and NMI vs labels (and the per-seed
values in the .tsv). Quality numbers only (no times: the machine is shared).

    python benchmarks/integrate/parity_seeds.py   # writes benchmarks/results/integrate_parity_seeds.{md,tsv}
"""
import argparse
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import parity  # noqa: E402  (sets one thread, the import path and the data sets)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from scfactor.integrate import model, pipeline, restarts  # noqa: E402
from scfactor.integrate.cli import INTEGRATE  # noqa: E402
from scfactor.preprocess import genes as genesel  # noqa: E402

#: (name, nrep, max_iters, thresh, keep[, solver]); 30 iterations, tolerance 1e-6 = rliger's / pyliger's settings
VARIANTS = [
    ("1 start, 30 it", 1, 30, 1e-6, "objective"),
    ("1 start, 30 it, exact ANLS (pyliger's algorithm)", 1, 30, 1e-6, "objective", "anls"),
    ("1 start, <=100 it, tol 1e-5", 1, 100, 1e-5, "objective"),
    ("3 starts, lowest objective, <=100 it, tol 1e-5 (old default)", 3, 100, 1e-5, "objective"),
    ("5 starts, lowest objective, <=100 it, tol 1e-5", 5, 100, 1e-5, "objective"),
    ("5 starts, consensus, <=100 it, tol 1e-5 (previous default)", 5, 100, 1e-5, "consensus"),
    ("5 starts, lowest objective, 30 it", 5, 30, 1e-6, "objective"),
    ("3 starts, consensus, 30 it", 3, 30, 1e-6, "consensus"),
    ("5 starts, consensus, 30 it (default)", 5, 30, 1e-6, "consensus"),
]


class Chain:
    """scfactor's chain on one data set; every start's objective and clustering cached in ``work``."""

    def __init__(self, name, d, args, work: Path):
        batch = np.concatenate([[n] * m.shape[0] for n, m in zip(d["names"], d["counts"])])
        mask = genesel.liger_select_union(sp.vstack(d["counts"]).tocsr(), batch)
        mats = [model.library_normalize(m)[:, mask] for m in d["counts"]]
        b = pipeline.Batches(mats, list(d["names"]), pd.DataFrame(index=np.arange(len(batch))),
                             pd.Index(d["genes"][mask]), "bench")
        self.xs = pipeline.scale_batches(b)
        self.args, self.prefix = args, work / f"{name}.scfactor.k{args.k}.l{args.lam:g}.r{args.resolution:g}"

    def start(self, seed, iters, thresh, solver="hals"):
        """One start, fitted and clustered with its own seed as the integrate step does: (objective, labels)."""
        tag = "" if solver == "hals" else f".{solver}"
        path = Path(f"{self.prefix}.s{seed}.i{iters}.t{thresh:g}{tag}.npz")
        if not path.exists():
            opts = INTEGRATE.defaults(k=self.args.k, lambda_=self.args.lam, leiden_resolution=self.args.resolution,
                                      seed=seed, max_iters=iters, thresh=thresh, solver=solver)
            fit = model.fit_inmf(self.xs, k=opts.k, lam=opts.lambda_, max_iters=iters, thresh=thresh, nrep=1,
                                 seed=seed, solver=opts.solver, hals_sweeps=opts.hals_sweeps)
            np.savez(path, objective=fit.objective, labels=restarts.cluster_fit(fit.H, opts))
        z = np.load(path)
        return float(z["objective"]), z["labels"]

    def downstream_of(self, h, seed):
        """scfactor's quantile normalisation and Leiden (seed ``seed``) of given loadings (pyliger's H)."""
        path = Path(f"{self.prefix}.pyligerH.s{seed}.npz")
        if not path.exists():
            opts = INTEGRATE.defaults(k=self.args.k, lambda_=self.args.lam, leiden_resolution=self.args.resolution,
                                      seed=seed)
            np.savez(path, labels=restarts.cluster_fit(h, opts))
        return np.load(path)["labels"]

    def run(self, s, nrep, iters, thresh, keep, solver="hals"):
        """The clusters the chain with seed ``s`` ends with under one variant; and the start kept."""
        starts = [self.start(s + r, iters, thresh, solver) for r in range(nrep)]
        objectives = [o for o, _ in starts]
        if keep == "objective":
            best = int(np.argmin(objectives))
        else:
            best = restarts.consensus([c for _, c in starts], objectives)[0]
        return starts[best][1], best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(parity.DATASETS), choices=list(parity.DATASETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 101, 201],
                    help="scfactor's run seeds; starts are seeded s, s+1, ..., so keep them > 5 apart")
    ap.add_argument("--pyliger-seeds", nargs="+", type=int, default=[1, 2, 3],
                    help="pyliger's seeds (one start each; its runs are the slow part; cached in --work)")
    ap.add_argument("--pyliger-h-seeds", nargs="+", type=int, default=None,
                    help="pyliger seeds whose H scfactor's quantile norm + Leiden also cluster (default: all)")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--lam", type=float, default=5.0)
    ap.add_argument("--resolution", type=float, default=None,
                    help="Leiden resolution for both tools (default: the integrate schema's)")
    ap.add_argument("--bench-python", default="/root/.cache/scfactor/bench-integrate/bin/python")
    ap.add_argument("--work", default="/tmp/scfactor-bench-parity")
    ap.add_argument("--out", default=str(parity.REPO / "benchmarks/results/integrate_parity_seeds"))
    args = ap.parse_args()
    command = "python " + shlex.join([str(Path(__file__).resolve().relative_to(parity.REPO)), *sys.argv[1:]])
    if args.pyliger_h_seeds is None:
        args.pyliger_h_seeds = args.pyliger_seeds
    if args.resolution is None:
        args.resolution = INTEGRATE.defaults().leiden_resolution
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets:
        d = parity.DATASETS[name](work) if name == "simulated" else parity.DATASETS[name]()
        labels = np.concatenate(d["labels"])
        chain = Chain(name, d, args, work)
        for s in args.pyliger_seeds:  # one start each, so any distinct seeds are independent runs
            pl = parity.run_pyliger(d, name, work, args.bench_python, argparse.Namespace(**{**vars(args), "seed": s}))
            clusters = np.concatenate(pl["leiden"]).astype(str)
            rows.append((name, "pyliger 0.2.4 (1 start, 30 it)", s, *parity.label_scores(labels, clusters),
                         len(np.unique(clusters)), 0))
            if s in args.pyliger_h_seeds:
                clusters = chain.downstream_of(pl["H"], s).astype(str)
                rows.append((name, "scfactor quantile norm + Leiden of pyliger's H", s,
                             *parity.label_scores(labels, clusters), len(np.unique(clusters)), 0))
        for s in args.seeds:
            n0 = len(rows)
            for vname, *variant in VARIANTS:
                clusters, best = chain.run(s, *variant)
                rows.append((name, f"scfactor {vname}", s, *parity.label_scores(labels, clusters),
                             len(np.unique(clusters)), best))
            print(pd.DataFrame(rows[n0:]).to_string(header=False), flush=True)
        write(rows, args, command)  # after every data set, so a partial run leaves its finished rows


def write(rows, args, command):
    """Per-seed rows to .tsv (the command first); mean / min / max per data set and chain to .md."""
    per_seed = pd.DataFrame(rows, columns=["dataset", "chain", "seed", "ari", "nmi", "n_clusters", "kept_start"])
    summary = (per_seed.groupby(["dataset", "chain"], sort=False)
               .agg(ari_mean=("ari", "mean"), ari_min=("ari", "min"), ari_max=("ari", "max"),
                    nmi_mean=("nmi", "mean"), nmi_min=("nmi", "min"), nmi_max=("nmi", "max"),
                    clusters_mean=("n_clusters", "mean")).reset_index())
    with open(f"{args.out}.tsv", "w") as f:
        f.write(f"# {command}\n")
        per_seed.to_csv(f, sep="\t", index=False, float_format="%.4f")
    with open(f"{args.out}.md", "w") as f:
        f.write(f"`{command}`\n\n# LIGER parity over seeds: ARI / NMI vs labels, scfactor variants vs pyliger "
                f"0.2.4\n\nk = {args.k}, lambda = {args.lam:g}, Leiden resolution {args.resolution:g}, seeds "
                f"{', '.join(map(str, args.seeds))} for scfactor (the run seed; starts seeded s, s+1, ...), "
                f"{', '.join(map(str, args.pyliger_seeds))} for pyliger (optimize_ALS rand_seed, one start each; "
                f"also the Leiden seed of scfactor's quantile norm + Leiden of pyliger's H, run for pyliger seeds "
                f"{', '.join(map(str, args.pyliger_h_seeds))}). Per-seed values in the .tsv.\n\n"
                f"{summary.to_markdown(index=False, floatfmt='.3f')}\n")


if __name__ == "__main__":
    main()
