"""Command lines of the MTL steps (``workflow/scripts/mtl_*.py``, ``simulate_mtl.py``); options from the schemas.

Schema parts: ``mtl`` (``mtl.schema.yaml``: top-level settings, the ``datasets.*`` entries, ``velocity``,
``tf_activity``, ``lasso``, ``train``) and ``simulate_mtl`` (``simulate_mtl.schema.yaml``). A run's
overrides (``mtl.datasets.<run>.min_cells`` ...) are resolved by `scfactor.mtl.smk` before the command
line is built, so each script has one flag per setting.
"""

from __future__ import annotations

from ..core import cli, io
from ..core.options import Group, Step

SIMULATE = Step("simulate_mtl", Group("simulate_mtl"))
VELOCITY = Step("mtl_velocity", Group("mtl", "datasets.*", include=("tissue_key", "tissues", "max_cells_per_tissue")),
                Group("mtl", "velocity"), Group("mtl", include=("seed",)))
TF_ACTIVITY = Step("mtl_tf_activity", Group("mtl", "datasets.*", include=("species",)), Group("mtl", "tf_activity"))
LASSO = Step("mtl_lasso", Group("mtl", include=("seed", "reps", "test_ratio", "min_cells")), Group("mtl", "lasso"))
SELECT_GENES = Step("mtl_select_genes", Group("mtl", include=("seed", "min_cells", "num_genes")))
GENE_CLUSTERS = Step("mtl_gene_clusters", Group("mtl", include=("seed", "n_clusters")))
TRAIN_SHARD = Step("mtl_train_shard", Group("mtl", include=("seed", "test_ratio")),
                   Group("mtl", "train", exclude=("ablation", "mem_mb", "runtime")))
AGGREGATE = Step("mtl_aggregate")
FIGURES = Step("mtl_figures")

_LAYOUT_HELP = "layout root (rpkm.hdf5, velo.hdf5, tf_activity/, ensembl_to_symbol.csv, tf_list.csv)"


def simulate_mtl(argv=None) -> int:
    """Simulate multi-task regression data in the trace-norm MTL notebook's layout, with its ground truth."""
    p = cli.parser(simulate_mtl, SIMULATE)
    p.add_argument("--out-dir", required=True, help="layout root to write (and truth/genes.tsv, truth/maps.h5)")
    args = cli.start(p, argv)
    from .simulate import outputs, simulate_layout
    opts = SIMULATE.from_args(args)
    with io.all_or_nothing(*outputs(args.out_dir)):
        out = simulate_layout(args.out_dir, opts)
    cli.LOG.info("wrote %d tissues x %d cells, %d genes, %d TFs to %s", opts.n_tissues, opts.n_cells,
                 opts.n_genes, opts.n_tfs, out)
    return 0


def _tissue_parser(func, step):
    """The parser of a per-tissue step: schema options plus ``--layout`` and ``--tissue``."""
    p = cli.parser(func, step)
    p.add_argument("--layout", required=True, help=_LAYOUT_HELP)
    p.add_argument("--tissue", required=True, help="tissue (hdf5 group)")
    return p


def mtl_velocity(argv=None) -> int:
    """Steady-state RNA velocity of a spliced/unspliced .h5ad, written as the notebook's rpkm.hdf5 / velo.hdf5."""
    p = cli.parser(mtl_velocity, VELOCITY)
    p.add_argument("--input", required=True, help=".h5ad with raw 'spliced' and 'unspliced' layers")
    p.add_argument("--out-dir", required=True, help="layout root (writes rpkm.hdf5, velo.hdf5, ensembl_to_symbol.csv)")
    args = cli.start(p, argv)
    from pathlib import Path

    from . import layout as L
    from .pipeline import velocity
    out = velocity(args.input, VELOCITY.from_args(args))
    root = Path(args.out_dir)
    with io.all_or_nothing(root / L.RPKM, root / L.VELO, root / L.E2S):
        L.write_hdf5_groups(root / L.RPKM, "exp", out.rpkm)
        L.write_hdf5_groups(root / L.VELO, "velo", out.velo)
        L.write_e2s(root, out.e2s)
    return 0


def mtl_tf_activity(argv=None) -> int:
    """Gene x TF mean/sum activity tables of every tissue of a layout from a DoRothEA-style prior."""
    p = cli.parser(mtl_tf_activity, TF_ACTIVITY)
    p.add_argument("--layout", required=True, help="layout root holding rpkm.hdf5 and velo.hdf5 (writes "
                                                   "tf_list.csv and tf_activity/{mean_tf,sum_tf}/<tissue>.csv)")
    args = cli.start(p, argv)
    from pathlib import Path

    from . import layout as L
    from .pipeline import tf_activity
    root = Path(args.layout)
    tables, tfs = tf_activity(root, TF_ACTIVITY.from_args(args))
    with io.all_or_nothing(root / L.TF_LIST, root / "tf_activity"):
        for t, (mean, summ) in tables.items():
            L.write_activity(root / L.MEAN_DIR / f"{t}.csv", mean)
            L.write_activity(root / L.SUM_DIR / f"{t}.csv", summ)
        L.write_tf_list(root, tfs)
    return 0


def mtl_lasso(argv=None) -> int:
    """Per-gene lasso baseline of one tissue: LassoCV on standardised TF expression, test R2 on the MTL splits."""
    p = _tissue_parser(mtl_lasso, LASSO)
    p.add_argument("--output", required=True, help="lasso_r2.csv (tissue, gene_ensembl, rep, alpha, r2, n_train, n_test)")
    args = cli.start(p, argv)
    cli.set_threads(1)  # --threads are joblib workers (genes in parallel), each single-threaded
    from .pipeline import lasso
    df = lasso(args.layout, args.tissue, LASSO.from_args(args), threads=args.threads)
    io.write_table(df, args.output)
    return 0


def mtl_select_genes(argv=None) -> int:
    """Select one tissue's MTL genes: in the lasso table, velocity in >= --min-cells cells, a seeded --num-genes."""
    p = _tissue_parser(mtl_select_genes, SELECT_GENES)
    p.add_argument("--lasso-table", required=True, help="lasso_r2.csv of the tissue")
    p.add_argument("--output", required=True, help="genes.tsv (gene_ensembl)")
    args = cli.start(p, argv)
    from .pipeline import select_genes
    df = select_genes(args.layout, args.tissue, args.lasso_table, SELECT_GENES.from_args(args))
    io.write_table(df, args.output)
    return 0


def mtl_gene_clusters(argv=None) -> int:
    """Balanced gene clusters of one tissue: KMeansConstrained on mean-imputed velocity, seeded."""
    p = _tissue_parser(mtl_gene_clusters, GENE_CLUSTERS)
    p.add_argument("--genes", required=True, help="genes.tsv from mtl_select_genes")
    p.add_argument("--output", required=True, help="clusters.tsv (gene_ensembl, cluster)")
    args = cli.start(p, argv)
    from .pipeline import gene_clusters
    df = gene_clusters(args.layout, args.tissue, args.genes, GENE_CLUSTERS.from_args(args))
    io.write_table(df, args.output)
    return 0


def mtl_train_shard(argv=None) -> int:
    """Train and test one trace-norm MTL shard (tissue, gene cluster, replicate) as one batched TensorFlow model."""
    from .shard import REFERENCE
    p = _tissue_parser(mtl_train_shard, TRAIN_SHARD)
    p.add_argument("--clusters", required=True, help="clusters.tsv (gene_ensembl, cluster)")
    p.add_argument("--cluster", type=int, required=True, help="gene cluster of the shard")
    p.add_argument("--rep", type=int, required=True, help="replicate: selects the split and the seeds")
    p.add_argument("--model", default=REFERENCE, help="label written to the table (tracenorm, lambda0)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="folder (or s3:// URL) of the per-epoch training state (resumed when present, removed "
                        "at the end)")
    p.add_argument("--output", required=True, help="per-gene R2 .tsv")
    p.add_argument("--weights", required=True, help="final weights .npz")
    args = cli.start(p, argv)
    from ..core import remote
    from .shard import train_shard, write_shard_table
    from .training import save_weights
    ckpt = remote.stage(args.checkpoint_dir)
    res = train_shard(args.layout, args.tissue, args.clusters, args.cluster, args.rep, args.model,
                      TRAIN_SHARD.from_args(args), checkpoint_dir=ckpt, threads=args.threads)
    with io.all_or_nothing(args.output, args.weights):
        save_weights(args.weights, res.model.arrays(), res.genes, res.attrs)
        write_shard_table(args.output, res.table)
    remote.remove(ckpt)
    return 0


def mtl_aggregate(argv=None) -> int:
    """Aggregate MTL shards: one R2 table joined with the lasso on the same splits, and per-tissue summaries."""
    p = cli.parser(mtl_aggregate, AGGREGATE)
    p.add_argument("--shards", nargs="+", required=True, help="shard .tsv files")
    p.add_argument("--lasso-tables", nargs="+", required=True, help="lasso_r2.csv files (one per tissue)")
    p.add_argument("--output", required=True, help="r2.tsv (tissue, gene, cluster, rep, model, lambda, r2, "
                                                   "n_train, n_test, lasso_r2)")
    p.add_argument("--summary", required=True, help="summary.tsv (per tissue and model)")
    args = cli.start(p, argv)
    from .pipeline import aggregate, read_lasso, read_shards
    table, summary = aggregate(read_shards(args.shards), read_lasso(args.lasso_tables))
    with io.all_or_nothing(args.output, args.summary):
        io.write_table(table, args.output)
        io.write_table(summary, args.summary)
    for row in summary.itertuples():
        cli.LOG.info("%s %s: %d genes, mean R2 %.3f (lasso %.3f)", row.tissue, row.model, row.genes,
                     row.mean_r2, row.mean_lasso_r2)
    return 0


def mtl_figures(argv=None) -> int:
    """MTL figures: test R2 per gene vs the lasso and vs lambda = 0 per tissue; R2 per gene cluster."""
    p = cli.parser(mtl_figures, FIGURES)
    p.add_argument("--r2", required=True, help="r2.tsv from mtl_aggregate")
    p.add_argument("--run", default="", help="run name used in the titles")
    p.add_argument("--comparison", required=True, help="MTL vs lasso / lambda=0 figure .png (its .pdf beside it)")
    p.add_argument("--clusters", required=True, help="R2 per cluster figure .png (its .pdf beside it)")
    args = cli.start(p, argv)
    from ..core.plotting import figure_paths, save_figure
    from .pipeline import read_r2
    from .plots import cluster_figure, comparison_figure
    paths = [*figure_paths(args.comparison), *figure_paths(args.clusters)]  # bad names fail before any work
    r2 = read_r2(args.r2)
    with io.all_or_nothing(*paths):
        save_figure(comparison_figure(r2, args.run), args.comparison)
        save_figure(cluster_figure(r2, args.run), args.clusters)
    return 0
