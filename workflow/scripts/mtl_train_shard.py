#!/usr/bin/env python
"""Train and test one trace-norm MTL shard (tissue, gene cluster, replicate) of seed 001 as one batched TF model.

Reads the seed layout, the tissue's clusters.tsv; trains on replicate --rep's split (seeded by
--seed and --rep: the same split as the lasso); checkpoints every epoch to --checkpoint-dir and
resumes from it ("resuming from epoch N"); writes its own TSV (tissue, gene, cluster, rep, model,
lambda, r2, n_train, n_test) and its weights (.h5). Output bytes depend only on inputs and options.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scfactor.core.device import configure_tf  # noqa: E402
from scfactor.core import cli, io  # noqa: E402
from scfactor import mtl_layout as L  # noqa: E402
from scfactor.core.device import TF_CHOICES  # noqa: E402
from scfactor.core.errors import InputError  # noqa: E402
from scfactor.models.mtl_data import build_shard, shard_seed  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--layout", required=True, help="seed-layout root")
    p.add_argument("--tissue", required=True)
    p.add_argument("--clusters", required=True, help="clusters.tsv (gene_ensembl, cluster)")
    p.add_argument("--cluster", type=int, required=True)
    p.add_argument("--rep", type=int, required=True, help="replicate: selects the split and the seeds")
    p.add_argument("--model", default="tracenorm", help="label written to the table (e.g. tracenorm, lambda0)")
    p.add_argument("--lam", type=float, default=0.01, help="trace-norm weight lambda (0 = independent tasks)")
    p.add_argument("--l1", type=float, default=0.0, help="L1 weight on the ReLU layers' kernels (0 = the notebook's effective loss)")
    p.add_argument("--unfold-axis", choices=["task", "input", "output"], default="task")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=0.01)
    p.add_argument("--test-ratio", type=float, default=0.1)
    p.add_argument("--accelerator", choices=TF_CHOICES, default="auto")
    p.add_argument("--checkpoint-dir", default=None, help="per-epoch training state (resumed when present)")
    p.add_argument("--output", required=True, help="per-gene R2 .tsv")
    p.add_argument("--weights", required=True, help="final weights .npz")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    if args.epochs < 1 or args.batch_size < 1:
        raise InputError("options", "--epochs and --batch-size must be >= 1")
    cl = io.read_table(args.clusters, dtype={"gene_ensembl": str})
    io.require_columns(cl, ["gene_ensembl", "cluster"], args.clusters, "cluster table")
    genes = cl.loc[cl["cluster"] == args.cluster, "gene_ensembl"].to_numpy()
    if len(genes) == 0:
        have = ", ".join(map(str, sorted(cl["cluster"].unique())))
        raise InputError(args.clusters, f"cluster {args.cluster} has no genes (clusters: {have})")
    data = L.load_tissue(args.layout, args.tissue, genes=genes)
    shard = build_shard(data, genes, args.test_ratio, args.seed, args.rep, shard=args.clusters)
    cli.LOG.info("shard %s c%02d r%d (%s, lambda %g): %d genes x %d TFs, %d-%d training cells per gene",
                 args.tissue, args.cluster, args.rep, args.model, args.lam, shard.n_genes, shard.n_tfs,
                 min(map(len, shard.train)), max(map(len, shard.train)))

    from scfactor.core.device import tf_strategy
    from scfactor.models import mtl
    seq = shard_seed(args.seed, args.tissue, args.cluster, args.rep)
    configure_tf(int(seq.generate_state(1)[0]), threads=args.threads)
    strategy = tf_strategy(args.accelerator)
    with strategy.scope():
        model, hist = mtl.train_shard(shard, epochs=args.epochs, batch_size=args.batch_size, lr=args.learning_rate,
                                      lam=args.lam, l1=args.l1, unfold_axis=args.unfold_axis, seed_seq=seq,
                                      checkpoint_dir=args.checkpoint_dir)
        r2 = mtl.test_r2(model, shard)
    df = pd.DataFrame({"tissue": args.tissue, "gene": shard.genes, "cluster": args.cluster, "rep": args.rep,
                       "model": args.model, "lambda": args.lam, "r2": np.round(r2, 6),
                       "n_train": [len(t) for t in shard.train], "n_test": [len(t) for t in shard.test]})
    mtl.save_weights(args.weights, model, shard.genes,
                     {"tissue": args.tissue, "cluster": args.cluster, "rep": args.rep, "lambda": args.lam,
                      "l1": args.l1, "epochs": args.epochs, "unfold_axis": args.unfold_axis})
    with io.atomic_output(args.output) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    if args.checkpoint_dir:
        shutil.rmtree(args.checkpoint_dir, ignore_errors=True)
    cli.LOG.info("test R2: mean %.3f, median %.3f", float(np.mean(r2)), float(np.median(r2)))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
