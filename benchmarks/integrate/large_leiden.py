#!/usr/bin/env python
"""Leiden on the large path: CPU time and quality of one start, iterated until stable vs igraph's 2 iterations.

Reads an integrate output (``obsm['X_inmf_norm']`` and a label column, e.g. the scale benchmark's ``io.h5ad``
kept with ``--keep``), builds the SNN graph as the step does above ``exact_max_cells`` (approximate kNN,
schema defaults for ``n_neighbors`` and ``snn_prune``), and runs igraph's Leiden (modularity, the schema's
``leiden_resolution``) from the first ``--starts`` seeds of ``leiden_starts`` with each ``--iterations``
setting (-1: until stable). Per start: CPU seconds (this process, one thread), modularity, clusters, ARI
against the labels. Used to choose ``large_leiden_starts`` and the 2 iterations (docs/integrate.md).

    python benchmarks/integrate/large_leiden.py --input /tmp/scale200/n200000/io.h5ad \\
        --out benchmarks/results/integrate_large_leiden
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))

from results_file import command_line, write_results  # noqa: E402
from scfactor.core.cli import set_threads  # noqa: E402
from scfactor.integrate.cli import INTEGRATE  # noqa: E402


def main(argv=None) -> int:
    """Run every (iterations, start) pair; write ``<out>.tsv`` and ``<out>.md`` headed by the command."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, help="integrate output .h5ad (obsm X_inmf_norm)")
    ap.add_argument("--label-key", default="label")
    ap.add_argument("--iterations", type=int, nargs="+", default=[2, -1])
    ap.add_argument("--starts", type=int, default=3, help="seeds (the first of leiden_starts' seeds)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "integrate_large_leiden"))
    a = ap.parse_args(argv)
    command = command_line(__file__)
    set_threads(1)
    import anndata as ad
    import igraph as ig
    import scipy.sparse as sp
    from sklearn.metrics import adjusted_rand_score

    from scfactor.integrate.snn import snn_graph
    opts = INTEGRATE.defaults()
    adata = ad.read_h5ad(a.input, backed="r")
    x = np.asarray(adata.obsm["X_inmf_norm"], dtype=np.float64)
    labels = adata.obs[a.label_key].astype(str).to_numpy()
    t0 = time.process_time()
    snn = snn_graph(x, opts.n_neighbors, opts.snn_prune, exact_max_cells=min(opts.exact_max_cells, len(x) - 1),
                    seed=opts.seed)
    graph_cpu = time.process_time() - t0
    up = sp.triu(snn, k=0).tocoo()
    weights = np.where(up.row == up.col, 1.0, 2.0) * up.data
    g = ig.Graph(n=snn.shape[0], edges=np.column_stack([up.row, up.col]), directed=False)
    rng = np.random.default_rng(opts.seed)   # the seeds leiden_snn draws
    seeds = [int(rng.integers(0, 2 ** 31 - 1)) for _ in range(opts.leiden_starts)][:a.starts]
    rows = []
    for iterations in a.iterations:
        for i, s in enumerate(seeds):
            ig.set_random_number_generator(random.Random(s))
            t0 = time.process_time()
            part = g.community_leiden(objective_function="modularity", weights=weights,
                                      resolution=opts.leiden_resolution, n_iterations=iterations)
            rows.append({"cells": len(x), "iterations": iterations, "start": i, "cpu_s": time.process_time() - t0,
                         "modularity": part.quality, "clusters": len(set(part.membership)),
                         "ari_labels": adjusted_rand_score(labels, part.membership)})
            print(rows[-1], flush=True)
    ig.set_random_number_generator(random)
    write_results(a.out, command, pd.DataFrame(rows),
                  f"SNN graph ({len(x):,} cells, {snn.nnz:,} stored entries) built in {graph_cpu:.1f} CPU s "
                  "(pynndescent's compilation included); one thread; CPU seconds of each Leiden start "
                  "(`iterations` -1: until stable):")
    return 0


if __name__ == "__main__":
    sys.exit(main())
