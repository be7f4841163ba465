#!/usr/bin/env python
"""Leiden baseline: normalise, log1p, PCA, 15-NN graph, Leiden and UMAP (scanpy), scored against labels.

Outputs an .h5ad with obs['leiden'], obsm['X_pca'] and obsm['X_umap'] (usable by other figures) and a
one-row metrics TSV with the same columns as the NB mixture's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from scfactor.core import cli, io  # noqa: E402
from scfactor.core.errors import ScfactorError  # noqa: E402
from scfactor.models import nbmix_io  # noqa: E402
from scfactor.core.clustering import scanpy_pipeline  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    nbmix_io.add_data_args(p)
    p.add_argument("--n-pcs", type=int, default=50)
    p.add_argument("--n-neighbors", type=int, default=15)
    p.add_argument("--resolution", type=float, default=1.0)
    p.add_argument("--output", required=True, help="output .h5ad")
    p.add_argument("--metrics", required=True, help="one-row metrics .tsv")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    if args.n_pcs < 1 or args.n_neighbors < 2 or args.resolution <= 0:
        raise ScfactorError("--n-pcs must be >= 1, --n-neighbors >= 2 and --resolution > 0")
    dataset = args.dataset or Path(args.input).stem
    adata = nbmix_io.load_counts(args.input, batch=args.batch, genes=args.genes, layer=args.layer,
                                 drop_empty_cells=args.drop_empty_cells)
    if adata.n_obs < 3:
        raise ScfactorError(f"{args.input}: needs at least 3 cells for a neighbour graph (has {adata.n_obs})")
    t0 = time.time()
    res = scanpy_pipeline(adata.X, n_pcs=args.n_pcs, n_neighbors=args.n_neighbors, resolution=args.resolution,
                          seed=args.seed)
    sec = time.time() - t0
    pred = res["leiden"]
    adata.obs["leiden"] = pd.Categorical(pred.astype(str), categories=sorted(set(pred.astype(str)), key=int))
    adata.obsm["X_pca"] = res["X_pca"]
    adata.obsm["X_umap"] = res["X_umap"]
    adata.uns["leiden_baseline"] = {"n_pcs": args.n_pcs, "n_neighbors": args.n_neighbors,
                                    "resolution": args.resolution, "seed": args.seed, "seconds": sec}
    scores = nbmix_io.score(nbmix_io.labels_of(adata, args.labels), pred, None, args.labels)
    info = {"k": int(pred.max() + 1), "n_cells": adata.n_obs, "n_genes": adata.n_vars, "init": "",
            "loglik": float("nan"), "n_iter": 0, "converged": True}
    table = nbmix_io.metrics_frame(dataset, "leiden", info, scores)
    cli.LOG.info("leiden: %d clusters; %s", info["k"],
                 ", ".join(f"{k}={v:.4f}" for k, v in scores.items() if isinstance(v, float)))
    io.write_table(table, args.metrics)
    io.write_h5ad(adata, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
