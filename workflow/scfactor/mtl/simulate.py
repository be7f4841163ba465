"""Simulator (d): multi-task regression data in the trace-norm MTL notebook's file layout with planted shared structure.

Per tissue: cells carry a low-dimensional state ``z``; TF log10-expression is a noisy, clipped
linear function of it (so TFs are correlated, some zero). Genes fall in ``planted_clusters``
clusters; cluster k has a TF support S_k and a shared rank-``rank`` map B_k (rank x TFs, nonzero
on S_k). Gene g of cluster k has velocity::

    y_g = w_g . tanh(B_k x) / sd  +  noise * eps,      x = standardised TF log-expression

with gene-specific w_g (so the genes of a cluster share a rank-``rank`` hidden layer: the
structure the trace norm pools). The activity tables mark the support (mean activity > 0 on
S_k plus random extra edges), sum = mean x a peak count. A per-gene fraction of velocities is
missing (NaN). The ground truth (cluster, oracle R2 = 1 / (1 + noise^2), missing fraction, and the
maps B_k, w_g) is written beside the layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import layout as L
from ..core.errors import ScfactorError
from ..core.io import atomic_output, write_table

#: dimension of the cells' latent state
N_STATES = 5


def simulate_tissue(rng, n_cells, n_genes, n_tfs, n_clusters, rank, support, noise, max_missing,
                    extra_edges, n_states=N_STATES):
    """One tissue: dict with expr (cells x TFs, rpkm), other (cells x genes, rpkm), velo, activities, truth."""
    z = rng.standard_normal((n_cells, n_states))
    load = rng.standard_normal((n_states, n_tfs)) / np.sqrt(n_states)
    base = rng.uniform(0.3, 1.5, size=n_tfs)
    e = np.clip(base + 0.5 * z @ load + 0.25 * rng.standard_normal((n_cells, n_tfs)), 0, None)
    x = (e - e.mean(0)) / np.where(e.std(0) > 0, e.std(0), 1.0)
    labels = np.sort(np.arange(n_genes) % n_clusters)
    rng.shuffle(labels)
    B = np.zeros((n_clusters, rank, n_tfs))
    supp = np.zeros((n_clusters, n_tfs), dtype=bool)
    for k in range(n_clusters):
        s = rng.choice(n_tfs, size=min(support, n_tfs), replace=False)
        supp[k, s] = True
        B[k][:, s] = rng.standard_normal((rank, len(s))) * (1.5 / np.sqrt(len(s)))
    W = rng.standard_normal((n_genes, rank))
    velo = np.empty((n_cells, n_genes))
    miss = rng.uniform(0, max_missing, size=n_genes)
    for g in range(n_genes):
        sig = np.tanh(x @ B[labels[g]].T) @ W[g]
        sig = sig / (sig.std() if sig.std() > 0 else 1.0)
        velo[:, g] = sig + noise * rng.standard_normal(n_cells)
        velo[rng.random(n_cells) < miss[g], g] = np.nan
    act = supp[labels] * rng.uniform(0.3, 1.0, size=(n_genes, n_tfs))
    act = act + (rng.random((n_genes, n_tfs)) < extra_edges) * rng.uniform(0.05, 0.5, size=(n_genes, n_tfs))
    peaks = rng.poisson(3.0, size=act.shape) + 1
    other = np.clip(rng.normal(1.0, 0.5, size=(n_cells, n_genes)), 0, None)
    return dict(expr=10 ** e - 1, other=10 ** other - 1, velo=velo, mean=act, sum=act * peaks,
                labels=labels, B=B, W=W, missing=np.isnan(velo).mean(0), support=supp)


def simulate_layout(out_dir, opts):
    """Write a complete layout of the notebook under ``out_dir`` plus ``truth/genes.tsv`` and ``truth/maps.h5``.

    ``opts``: the ``simulate.mtl`` settings (`scfactor.mtl.cli.SIMULATE` options: ``n_tissues``, ``n_cells``,
    ``n_genes``, ``n_tfs``, ``planted_clusters``, ``rank``, ``support``, ``noise``, ``max_missing``,
    ``extra_edges``, ``seed``). More clusters than genes raises `ScfactorError`.
    """
    if opts.planted_clusters > opts.n_genes:
        raise ScfactorError(f"--planted-clusters {opts.planted_clusters} > --n-genes {opts.n_genes}: a planted cluster "
                            "would have no genes")
    n_tissues, n_cells, n_genes, n_tfs = opts.n_tissues, opts.n_cells, opts.n_genes, opts.n_tfs
    noise, seed = opts.noise, opts.seed
    import h5py
    out = Path(out_dir)
    tf_ids = [f"ENSSIMT{i + 1:05d}" for i in range(n_tfs)]
    gene_ids = [f"ENSSIMG{i + 1:05d}" for i in range(n_genes)]
    tf_sym = [f"TF{i + 1}" for i in range(n_tfs)]
    gene_sym = [f"Gene{i + 1}" for i in range(n_genes)]
    rpkm, velo, truth, maps = {}, {}, [], {}
    for ti in range(n_tissues):
        tissue = f"tissue{ti + 1}"
        rng = np.random.default_rng([int(seed), ti])
        d = simulate_tissue(rng, n_cells, n_genes, n_tfs, opts.planted_clusters, opts.rank, opts.support, noise,
                            opts.max_missing, opts.extra_edges)
        barcodes = [f"{tissue}_cell{c + 1}" for c in range(n_cells)]
        rpkm[tissue] = (np.hstack([d["expr"], d["other"]]), barcodes, tf_ids + gene_ids)
        velo[tissue] = (d["velo"], barcodes, gene_ids)
        L.write_activity(out / L.MEAN_DIR / f"{tissue}.csv",
                         pd.DataFrame(d["mean"].T, index=tf_sym, columns=gene_sym))
        L.write_activity(out / L.SUM_DIR / f"{tissue}.csv",
                         pd.DataFrame(d["sum"].T.astype(float), index=tf_sym, columns=gene_sym))
        truth.append(pd.DataFrame({"tissue": tissue, "gene_ensembl": gene_ids, "gene_symbol": gene_sym,
                                   "cluster": d["labels"], "oracle_r2": 1.0 / (1.0 + noise ** 2),
                                   "missing_frac": np.round(d["missing"], 6)}))
        maps[tissue] = d
    L.write_hdf5_groups(out / L.RPKM, "exp", rpkm)
    L.write_hdf5_groups(out / L.VELO, "velo", velo)
    e2s = pd.DataFrame({"ensembl_id": tf_ids + gene_ids, "gene_symbol": tf_sym + gene_sym})
    L.write_id_tables(out, e2s, tf_ids)
    write_table(pd.concat(truth, ignore_index=True), out / "truth" / "genes.tsv")
    with atomic_output(out / "truth" / "maps.h5") as tmp:
        with h5py.File(tmp, "w") as f:
            for tissue, d in maps.items():
                g = f.create_group(tissue)
                for k in ("B", "W", "support", "labels"):
                    g.create_dataset(k, data=d[k], track_times=False)
    return out


def outputs(out_dir) -> list[Path]:
    """Every file and folder `simulate_layout` writes under ``out_dir``."""
    out = Path(out_dir)
    return [out / L.RPKM, out / L.VELO, out / L.E2S, out / L.TF_LIST, out / "tf_activity",
            out / "truth" / "genes.tsv", out / "truth" / "maps.h5"]
