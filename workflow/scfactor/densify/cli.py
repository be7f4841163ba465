"""Command lines of the densify steps (``workflow/scripts/densify.py``, ``densify_figure.py``); options from
``workflow/schemas/densify.schema.yaml``."""

from __future__ import annotations

from ..core import cli, io, remote
from ..core.options import Group, Step

#: the densify section without its map of targets and the rule's resources
DENSIFY = Step("densify", Group("densify", exclude=("mem_mb", "runtime")))
#: the figure takes no option of the schema (its settings come from the densify output)
FIGURE = Step("densify_figure")


def densify(argv=None) -> int:
    """Densify one batch of a preprocessed count matrix with NeuMF (held-out evaluation included)."""
    p = cli.parser(densify, DENSIFY)
    p.add_argument("--input", required=True, help="preprocessed .h5ad (results/preprocess/<dataset>.h5ad)")
    p.add_argument("--batch", default=None, help="obs['batch'] value to densify (default: all cells)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="folder (or s3:// URL) for per-epoch checkpoints (resumed when they belong to this run)")
    p.add_argument("--output", required=True, help="output .h5ad")
    p.add_argument("--heldout-table", required=True, help="held-out metrics .tsv")
    args = cli.start(p, argv)
    from .pipeline import check_options, densify_batch, prepare_tf, validate_input
    opts = DENSIFY.from_args(args)
    check_options(opts)
    adata = validate_input(args.input, args.batch, opts)
    strategy = prepare_tf(opts, args.threads)
    with io.all_or_nothing(args.output, args.heldout_table):
        table = densify_batch(adata, opts, strategy, args.output, checkpoint_dir=remote.stage(args.checkpoint_dir),
                              source=dict(input=str(args.input), batch=args.batch))
        io.write_table(table, args.heldout_table)
    cli.LOG.info("wrote %s (%d cells x %d genes) and %s", args.output, adata.n_obs, adata.n_vars, args.heldout_table)
    return 0


def densify_figure(argv=None) -> int:
    """Plot NeuMF held-out predictions vs observed counts (next to the SVD baseline) and the loss trace."""
    p = cli.parser(densify_figure, FIGURE)
    p.add_argument("--input", required=True, help="densify output .h5ad")
    p.add_argument("--title", default=None, help="figure title, e.g. '<dataset> <batch>' (default: the input's stem)")
    p.add_argument("--figure", required=True, help="figure .png (its .pdf is written beside it)")
    args = cli.start(p, argv)
    from pathlib import Path

    from ..core.plotting import figure_paths, save_figure
    from .pipeline import heldout_figure
    figure_paths(args.figure)  # a bad figure name fails before any work
    adata = io.read_h5ad(args.input)
    fig = heldout_figure(adata, args.input, args.title or Path(args.input).stem)
    save_figure(fig, args.figure)
    cli.LOG.info("wrote %s", args.figure)
    return 0
