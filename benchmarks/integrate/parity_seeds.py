#!/usr/bin/env python
"""LIGER parity over seeds: is scfactor's downstream gap to pyliger systematic or seed luck?

For every data set of ``parity.py`` and every seed s, pyliger 0.2.4's whole chain runs with
``optimize_ALS(rand_seed=s)`` (its defaults otherwise: one start, 30 iterations; cached by ``parity.py``'s
`run_pyliger`), and scfactor's chain (LIGER genes, scaling, iNMF, quantile normalisation, Leiden on the
SNN graph, schema defaults except k, lambda, resolution) runs with seed s under several restart /
stopping variants:

* ``nrep`` starts with seeds s, s+1, ... (one iNMF fit per start),
* ``max_iters`` / ``thresh`` (the cap and tolerance of every start),
* ``keep``: which start is kept: ``objective`` = the lowest final objective; ``consensus`` = the start
  whose joint Leiden clustering agrees most (mean ARI) with the other starts' clusterings
  (`scfactor.integrate.restarts`; start s + r clustered with seed s + r, as the integrate step does).

Each start is fitted once and shared by the variants that contain it (a start's fit depends only on its
seed, cap and tolerance). Output: per data set and variant, mean / min / max over the seeds of ARI and
NMI vs labels (and the per-seed values in the .tsv). Quality numbers only (no times: the machine is shared).

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

#: (name, nrep, max_iters, thresh, keep, solver); 30 iterations = pyliger's cap and tolerance 1e-6
VARIANTS = [
    ("1 start, 30 it (pyliger's settings)", 1, 30, 1e-6, "objective", "hals"),
    ("1 start, 30 it, exact ANLS (pyliger's solver)", 1, 30, 1e-6, "objective", "anls"),
    ("1 start, <=100 it, tol 1e-5", 1, 100, 1e-5, "objective", "hals"),
    ("3 starts, lowest objective, <=100 it (old default)", 3, 100, 1e-5, "objective", "hals"),
    ("5 starts, lowest objective, <=100 it", 5, 100, 1e-5, "objective", "hals"),
    ("3 starts, consensus, <=100 it", 3, 100, 1e-5, "consensus", "hals"),
    ("5 starts, consensus, <=100 it", 5, 100, 1e-5, "consensus", "hals"),
    ("5 starts, consensus, 30 it", 5, 30, 1e-6, "consensus", "hals"),
]


class Chain:
    """scfactor's chain on one data set, every start's fit and clustering memoised."""

    def __init__(self, d, args, defaults):
        batch = np.concatenate([[n] * m.shape[0] for n, m in zip(d["names"], d["counts"])])
        mask = genesel.liger_select_union(sp.vstack(d["counts"]).tocsr(), batch)
        mats = [model.library_normalize(m)[:, mask] for m in d["counts"]]
        b = pipeline.Batches(mats, list(d["names"]), pd.DataFrame(index=np.arange(len(batch))),
                             pd.Index(d["genes"][mask]), "bench")
        self.xs = pipeline.scale_batches(b)
        self.args, self.defaults = args, defaults
        self.fits, self.clusters = {}, {}

    def fit(self, seed, iters, thresh, solver):
        """One start (memoised): the iNMF result."""
        key = (seed, iters, thresh, solver)
        if key not in self.fits:
            self.fits[key] = model.fit_inmf(self.xs, k=self.args.k, lam=self.args.lam, max_iters=iters,
                                            thresh=thresh, nrep=1, seed=seed, solver=solver,
                                            hals_sweeps=self.defaults.hals_sweeps)
        return self.fits[key]

    def cluster(self, fit_key, run_seed):
        """Joint Leiden clusters of one start, as the integrate step computes them with seed ``run_seed``."""
        key = (*fit_key, run_seed)
        if key not in self.clusters:
            self.clusters[key] = restarts.cluster_fit(self.fit(*fit_key).H, self.defaults_for(run_seed))
        return self.clusters[key]

    def defaults_for(self, run_seed):
        """The integrate options of a run with seed ``run_seed``."""
        return INTEGRATE.defaults(k=self.args.k, lambda_=self.args.lam, leiden_resolution=self.args.resolution,
                                  seed=run_seed)

    def run(self, s, nrep, iters, thresh, keep, solver):
        """The clusters the chain with seed ``s`` ends with under one variant; and the start kept."""
        keys = [(s + r, iters, thresh, solver) for r in range(nrep)]
        objectives = [self.fit(*key).objective for key in keys]
        if keep == "objective":
            best = int(np.argmin(objectives))
            return self.cluster(keys[best], s), best
        # consensus: start s + r is clustered with seed s + r, and the kept start's clusters are the result
        clusterings = [self.cluster(key, key[0]) for key in keys]
        best = restarts.consensus(clusterings, objectives)[0]
        return clusterings[best], best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(parity.DATASETS), choices=list(parity.DATASETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    ap.add_argument("--pyliger-seeds", nargs="+", type=int, default=[1, 2, 3],
                    help="pyliger's seeds (its runs are the slow part; cached in --work)")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--lam", type=float, default=5.0)
    ap.add_argument("--resolution", type=float, default=None,
                    help="Leiden resolution for both tools (default: the integrate schema's)")
    ap.add_argument("--bench-python", default="/root/.cache/scfactor/bench-integrate/bin/python")
    ap.add_argument("--work", default="/tmp/scfactor-bench-parity")
    ap.add_argument("--out", default=str(parity.REPO / "benchmarks/results/integrate_parity_seeds"))
    args = ap.parse_args()
    command = "python " + shlex.join([str(Path(__file__).resolve().relative_to(parity.REPO)), *sys.argv[1:]])
    defaults = INTEGRATE.defaults()
    if args.resolution is None:
        args.resolution = defaults.leiden_resolution
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets:
        d = parity.DATASETS[name](work) if name == "simulated" else parity.DATASETS[name]()
        labels = np.concatenate(d["labels"])
        chain = Chain(d, args, defaults)
        for s in args.seeds:
            n0 = len(rows)
            if s in args.pyliger_seeds:
                pl = parity.run_pyliger(d, name, work, args.bench_python,
                                        argparse.Namespace(**{**vars(args), "seed": s}))
                clusters = np.concatenate(pl["leiden"]).astype(str)
                rows.append((name, "pyliger 0.2.4 (1 start, 30 it)", s, *parity.label_scores(labels, clusters),
                             len(np.unique(clusters)), 0))
            for vname, *variant in VARIANTS:
                clusters, best = chain.run(s, *variant)
                rows.append((name, f"scfactor {vname}", s, *parity.label_scores(labels, clusters),
                             len(np.unique(clusters)), best))
            print(pd.DataFrame(rows[n0:]).to_string(header=False), flush=True)
    per_seed = pd.DataFrame(rows, columns=["dataset", "chain", "seed", "ari", "nmi", "n_clusters", "kept_start"])
    order = {c: i for i, c in enumerate(per_seed["chain"].unique())}
    summary = (per_seed.groupby(["dataset", "chain"], sort=False)
               .agg(ari_mean=("ari", "mean"), ari_min=("ari", "min"), ari_max=("ari", "max"),
                    nmi_mean=("nmi", "mean"), nmi_min=("nmi", "min"), nmi_max=("nmi", "max"),
                    clusters_mean=("n_clusters", "mean")).reset_index())
    summary = summary.sort_values(["dataset", "chain"], key=lambda c: c.map(order) if c.name == "chain" else c)
    with open(f"{args.out}.tsv", "w") as f:
        f.write(f"# {command}\n")
        per_seed.to_csv(f, sep="\t", index=False, float_format="%.4f")
    with open(f"{args.out}.md", "w") as f:
        f.write(f"`{command}`\n\n# LIGER parity over seeds: ARI / NMI vs labels, scfactor variants vs pyliger "
                f"0.2.4\n\nk = {args.k}, lambda = {args.lam:g}, Leiden resolution {args.resolution:g}, seeds "
                f"{', '.join(map(str, args.seeds))} for scfactor (the run seed; starts seeded s, s+1, ...), "
                f"{', '.join(map(str, args.pyliger_seeds))} for pyliger (optimize_ALS rand_seed; a whole pyliger "
                f"chain is the slow part). Per-seed values in the .tsv.\n\n"
                f"{summary.to_markdown(index=False, floatfmt='.3f')}\n")


if __name__ == "__main__":
    main()
