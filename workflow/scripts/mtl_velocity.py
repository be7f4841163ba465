#!/usr/bin/env python
"""Steady-state RNA velocity of a spliced/unspliced .h5ad, written as seed 001's rpkm.hdf5 / velo.hdf5.

Tissues are the values of an obs column (--tissue-key); each becomes one hdf5 group (name
sanitised). Expression ("rpkm") is spliced + unspliced counts per million; velocity is
Mu - gamma * Ms (steady-state model, gamma on extreme quantiles), NaN where a cell has no read.
Also writes ensembl_to_symbol.csv (identity: the set has symbols only).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scfactor.core import cli, io  # noqa: E402
from scfactor import mtl_layout as L  # noqa: E402
from scfactor.core.errors import InputError  # noqa: E402
from scfactor.models.mtl_velocity import _dense, steady_state_velocity  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help=".h5ad with raw 'spliced' and 'unspliced' layers")
    p.add_argument("--tissue-key", default=None, help="obs column whose values are the tissues (none: one tissue 'all')")
    p.add_argument("--tissues", nargs="*", default=None, help="tissues (values of --tissue-key) to keep")
    p.add_argument("--max-cells-per-tissue", type=int, default=0, help="seeded subsample (0 = all)")
    p.add_argument("--min-shared-counts", type=int, default=20, help="keep genes with this many spliced and unspliced counts")
    p.add_argument("--n-neighbors", type=int, default=30)
    p.add_argument("--n-pcs", type=int, default=30)
    p.add_argument("--perc", type=float, default=5.0, help="extreme-quantile percent for the gamma fit")
    p.add_argument("--out-dir", required=True, help="layout root (writes rpkm.hdf5, velo.hdf5, ensembl_to_symbol.csv)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    path = args.input
    adata = io.read_h5ad(path)
    io.validate_names(adata, path)
    for layer in ("spliced", "unspliced"):
        io.validate_counts(io.get_matrix(adata, layer, path), path, what=layer, integer=False)
    if args.tissue_key is None:
        tissue = pd.Series("all", index=adata.obs_names)
    else:
        if args.tissue_key not in adata.obs:
            raise InputError(path, f"has no obs column {args.tissue_key!r} (columns: {', '.join(adata.obs.columns)})")
        tissue = adata.obs[args.tissue_key].astype(str)
    wanted = args.tissues or sorted(tissue.unique())
    missing = [t for t in wanted if t not in set(tissue)]
    if missing:
        raise InputError(path, f"tissue {missing[0]!r} has no cells in obs[{args.tissue_key!r}] "
                               f"(values: {', '.join(sorted(tissue.unique()))})")
    names = {t: L.sanitize_tissue(t) for t in wanted}
    rng = np.random.default_rng(args.seed)
    keep = []
    for t in wanted:
        idx = np.where(tissue.to_numpy() == t)[0]
        if args.max_cells_per_tissue and len(idx) > args.max_cells_per_tissue:
            idx = np.sort(rng.choice(idx, size=args.max_cells_per_tissue, replace=False))
        keep.append(idx)
    idx = np.concatenate(keep)
    ad = adata[idx]
    s, u = _dense(ad.layers["spliced"]), _dense(ad.layers["unspliced"])
    velo, gamma, gmask = steady_state_velocity(s, u, min_shared_counts=args.min_shared_counts,
                                               n_neighbors=args.n_neighbors, n_pcs=args.n_pcs,
                                               perc=args.perc, seed=args.seed, path=path)
    tot = s + u
    cpm = tot / np.where(tot.sum(1, keepdims=True) > 0, tot.sum(1, keepdims=True), 1.0) * 1e6
    genes = np.asarray(ad.var_names)
    vgenes = genes[gmask]
    cell_t = tissue.to_numpy()[idx]
    barcodes = np.asarray(ad.obs_names)
    rpkm, vel = {}, {}
    for t in wanted:
        sel = cell_t == t
        rpkm[names[t]] = (cpm[sel], barcodes[sel], genes)
        vel[names[t]] = (velo[sel], barcodes[sel], vgenes)
        cli.LOG.info("tissue %s -> %s: %d cells, %d velocity genes, %.1f%% missing", t, names[t], sel.sum(),
                     len(vgenes), 100 * np.isnan(velo[sel]).mean())
    out = Path(args.out_dir)
    L.write_hdf5_groups(out / L.RPKM, "exp", rpkm)
    L.write_hdf5_groups(out / L.VELO, "velo", vel)
    e2s = pd.DataFrame({"ensembl_id": genes, "gene_symbol": genes})
    with io.atomic_output(out / L.E2S) as tmp:
        e2s.to_csv(tmp)
    cli.LOG.info("gamma: median %.3f over %d genes", float(np.median(gamma)), len(gamma))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
