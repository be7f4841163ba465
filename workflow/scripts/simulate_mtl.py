#!/usr/bin/env python
"""Simulate multi-task regression data in seed 001's layout (rpkm/velo hdf5, TF activity CSVs) with ground truth.

Planted: balanced gene clusters sharing a low-rank TF -> hidden map, gene-specific read-outs,
missing (NaN) velocities. Writes the layout under --out-dir and truth/genes.tsv, truth/maps.h5.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli  # noqa: E402
from scfactor.core.errors import ScfactorError  # noqa: E402
from scfactor.models.mtl_sim import simulate_layout  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--out-dir", required=True, help="layout root to write")
    p.add_argument("--n-tissues", type=int, default=2)
    p.add_argument("--n-cells", type=int, default=600, help="cells per tissue")
    p.add_argument("--n-genes", type=int, default=40, help="velocity (target) genes per tissue")
    p.add_argument("--n-tfs", type=int, default=30)
    p.add_argument("--n-clusters", type=int, default=4, help="planted gene clusters")
    p.add_argument("--rank", type=int, default=2, help="rank of the map each cluster shares")
    p.add_argument("--support", type=int, default=8, help="TFs driving each cluster")
    p.add_argument("--noise", type=float, default=0.8, help="noise sd relative to the signal sd")
    p.add_argument("--max-missing", type=float, default=0.3, help="per-gene missing fraction ~ U(0, this)")
    p.add_argument("--extra-edges", type=float, default=0.05, help="density of uninformative activity edges")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    if min(args.n_tissues, args.n_cells, args.n_genes, args.n_tfs, args.n_clusters, args.rank, args.support) < 1:
        raise ScfactorError("every size (tissues, cells, genes, TFs, clusters, rank, support) must be >= 1")
    if args.n_clusters > args.n_genes:
        raise ScfactorError(f"--n-clusters {args.n_clusters} > --n-genes {args.n_genes}")
    out = simulate_layout(args.out_dir, n_tissues=args.n_tissues, n_cells=args.n_cells, n_genes=args.n_genes,
                          n_tfs=args.n_tfs, n_clusters=args.n_clusters, rank=args.rank, support=args.support,
                          noise=args.noise, max_missing=args.max_missing, extra_edges=args.extra_edges,
                          seed=args.seed)
    cli.LOG.info("wrote %d tissues x %d cells, %d genes, %d TFs to %s", args.n_tissues, args.n_cells,
                 args.n_genes, args.n_tfs, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
