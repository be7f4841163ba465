#!/usr/bin/env python
"""Densify one batch of a preprocessed count matrix with NeuMF (seed 000), with held-out evaluation.

Reads the cells of ``--batch`` from a preprocessed ``.h5ad`` (``layers['counts']``), keeps the
selected genes, hides a seeded fraction of the nonzero counts, trains GMF / MLP / NeuMF with the
chosen loss (TensorFlow; checkpoint every epoch, resumed on rerun), predicts the whole matrix in
blocks and writes an ``.h5ad`` with ``layers['counts']``, ``layers['neumf']`` (float32 prediction)
and ``uns['neumf']`` (settings, loss trace, held-out metrics), plus the held-out metrics as TSV.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli, io  # noqa: E402
from scfactor.core.device import TF_CHOICES  # noqa: E402
from scfactor.models.densify import DensifyOptions, configure_tf, densify, validate_input  # noqa: E402
from scfactor.models.neumf import ARCHS, LOSSES  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="preprocessed .h5ad (results/preprocess/<dataset>.h5ad)")
    p.add_argument("--batch", default=None, help="obs['batch'] value to densify (default: all cells)")
    p.add_argument("--genes", default="liger",
                   help="genes: all, liger (var['liger_selected']), hvg, or a file of gene names")
    p.add_argument("--layer", default="counts", help="layer with the counts to model")
    p.add_argument("--arch", default="neumf", choices=ARCHS)
    p.add_argument("--loss", default="nb", choices=LOSSES)
    p.add_argument("--embedding-dim", type=int, default=20, help="embedding size per tower")
    p.add_argument("--layers", type=int, nargs="+", default=[64, 32, 16, 8], help="MLP tower widths")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--bn-layers", type=int, default=2, help="MLP layers followed by batch norm + dropout")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8192)
    p.add_argument("--lr", type=float, default=0.003, help="Adam learning rate")
    p.add_argument("--zero-keep", type=float, default=1.0,
                   help="probability of keeping a zero entry per epoch (importance-weighted); 1 = all")
    p.add_argument("--num-neg", type=int, default=4, help="sampled negatives per nonzero (loss bce)")
    p.add_argument("--pretrain-epochs", type=int, default=0,
                   help="NCF pretraining: epochs of GMF and of MLP before NeuMF (0 = none)")
    p.add_argument("--heldout-frac", type=float, default=0.1, help="fraction of nonzeros hidden for evaluation")
    p.add_argument("--svd-rank", type=int, default=20, help="rank of the truncated-SVD baseline")
    p.add_argument("--predict-block", type=int, default=1 << 18, help="(cell, gene) entries per prediction block")
    p.add_argument("--accelerator", default="auto", choices=TF_CHOICES)
    p.add_argument("--checkpoint-dir", default=None, help="folder for per-epoch checkpoints (resumed)")
    p.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    p.add_argument("--output", required=True, help="output .h5ad")
    p.add_argument("--heldout-table", required=True, help="held-out metrics .tsv")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    opts = DensifyOptions(
        arch=args.arch, loss=args.loss, emb_dim=args.embedding_dim, layers=tuple(args.layers),
        dropout=args.dropout, bn_layers=args.bn_layers, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, zero_keep=args.zero_keep, num_neg=args.num_neg, pretrain_epochs=args.pretrain_epochs,
        heldout_frac=args.heldout_frac, svd_rank=args.svd_rank, predict_block=args.predict_block,
        seed=args.seed, jit=args.jit)
    opts.check()
    adata = validate_input(args.input, args.batch, args.genes, args.layer, args.loss)
    strategy = configure_tf(args.accelerator, args.threads, args.seed)
    out, table = densify(adata, opts, strategy, checkpoint_dir=args.checkpoint_dir,
                         source=dict(input=str(args.input), batch=args.batch, genes=args.genes,
                                     layer=args.layer, accelerator=args.accelerator))
    io.write_h5ad(out, args.output)
    io.write_table(table, args.heldout_table)
    cli.LOG.info("wrote %s (%d cells x %d genes) and %s", args.output, out.n_obs, out.n_vars, args.heldout_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
