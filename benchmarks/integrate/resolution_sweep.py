#!/usr/bin/env python
"""How the joint clustering's ARI vs labels depends on the Leiden resolution, on many- and few-type data.

scfactor's integrate chain (LIGER gene selection, scaling, iNMF with the schema's solver / restarts /
tolerance, quantile normalisation, SNN + Leiden) with k = 20, lambda = 5 on: Kang ctrl + stim (8 types),
PBMC 3k split with a planted batch effect (9 types), the simulator (6 groups), and few-type sets: the
PBMC 3k split restricted to B, CD14+ Mono and NK cells, and the simulator with 3 groups. For every
resolution: the number of clusters and ARI / NMI vs labels on the labelled cells; also the refined
max-factor clusters of quantile normalisation. Used to choose the schema's ``leiden_resolution``
(docs/integrate.md). Quality numbers only.

    python benchmarks/integrate/resolution_sweep.py   # writes benchmarks/results/integrate_resolution.{md,tsv}
"""
import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from parity import DATASETS, REPO, label_scores, pbmc3k_split, scored, write  # noqa: E402

import scipy.sparse as sp  # noqa: E402

from scfactor.integrate import model, quantile_norm, snn  # noqa: E402
from scfactor.integrate.cli import INTEGRATE, SIMULATE  # noqa: E402
from scfactor.preprocess import genes as genesel  # noqa: E402


def pbmc3k_three_types():
    """The PBMC 3k split restricted to three well-separated populations."""
    d = pbmc3k_split()
    keep_types = {"B", "CD14+ Mono", "NK"}
    for i in range(len(d["names"])):
        keep = np.isin(d["labels"][i].astype(str), list(keep_types))
        d["counts"][i], d["cells"][i], d["labels"][i] = d["counts"][i][keep], d["cells"][i][keep], d["labels"][i][keep]
    return d


def simulated_three(work: Path):
    """The simulator with 3 shared groups (few populations, k = 20 factors)."""
    from parity import _split
    import anndata as ad
    from scfactor.integrate.simulate import write_simulation
    path = work / "sim_batches_3.h5ad"
    if not path.exists():
        write_simulation(SIMULATE.defaults(n_cells=(1500, 1000), k_shared=3, seed=0), path)
    a = ad.read_h5ad(path)
    return _split(a, a.obs["batch"].astype(str).to_numpy(), a.obs["label"], ["b1", "b2"])


def chain(d, opts):
    """scfactor's chain up to the normalised loadings; returns (H_norm, refined max-factor clusters)."""
    batch = np.concatenate([[n] * m.shape[0] for n, m in zip(d["names"], d["counts"])])
    mask = genesel.liger_select_union(sp.vstack(d["counts"]).tocsr(), batch)
    xs = [model.liger_scale(m, mask) for m in d["counts"]]
    fit = model.fit_inmf(xs, k=opts.k, lam=opts.lambda_, max_iters=opts.max_iters, thresh=opts.thresh,
                         nrep=opts.nrep, seed=opts.seed, solver=opts.solver, hals_sweeps=opts.hals_sweeps)
    hn, qc, _ = quantile_norm.quantile_normalize(fit.H, None, quantiles=opts.quantiles, min_cells=opts.min_cells,
                                                 knn_k=opts.knn_k)
    return np.vstack(hn), np.concatenate(qc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 1.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--datasets", nargs="+", default=[*DATASETS, "pbmc3k_3types", "simulated_3groups"])
    ap.add_argument("--work", default="/tmp/scfactor-bench-parity")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/integrate_resolution"))
    args = ap.parse_args()
    command = "python " + shlex.join([str(Path(__file__).resolve().relative_to(REPO)), *sys.argv[1:]])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    loaders = {**DATASETS, "pbmc3k_3types": pbmc3k_three_types, "simulated_3groups": simulated_three}
    rows = []
    for name in args.datasets:
        d = loaders[name](work) if name.startswith("simulated") else loaders[name]()
        labels = np.concatenate(d["labels"])
        n_types = len(np.unique(scored(labels)[1][scored(labels)[0]]))
        for seed in args.seeds:
            opts = INTEGRATE.defaults(seed=seed)
            hn, qc = chain(d, opts)
            rows.append((name, n_types, seed, "max-factor (quantile_norm)", len(np.unique(qc)),
                         *label_scores(labels, qc)))
            for res in args.resolutions:
                c = snn.leiden_snn(hn, k=opts.n_neighbors, prune=opts.snn_prune, resolution=res,
                                   n_starts=opts.leiden_starts, seed=seed)
                rows.append((name, n_types, seed, f"leiden {res:g}", len(np.unique(c)), *label_scores(labels, c)))
            print(pd.DataFrame(rows[-len(args.resolutions) - 1:]).to_string(), flush=True)
    df = pd.DataFrame(rows, columns=["dataset", "n_types", "seed", "clustering", "n_clusters", "ari", "nmi"])
    write(df, args.out, command, "Joint clusters vs labels by Leiden resolution (scfactor, k = 20, lambda = 5)")


if __name__ == "__main__":
    main()
