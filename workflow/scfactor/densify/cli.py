"""Command lines of the densify steps (``workflow/scripts/densify.py``, ``densify_figure.py``, and the fan-out's
``densify_train.py``, ``densify_predict.py``, ``densify_gather.py``); options from
``workflow/schemas/densify.schema.yaml``."""

from __future__ import annotations

from ..core import cli, io, remote
from ..core.errors import ScfactorError
from ..core.options import Group, Step

#: the densify section without its map of targets, the rule's resources and the number of prediction jobs
#: (a property of the DAG: each fan-out job is told its share on its command line)
DENSIFY = Step("densify", Group("densify", exclude=("mem_mb", "runtime", "predict_shards")))
#: the figure takes no option of the schema (its settings come from the densify output)
FIGURE = Step("densify_figure")


def _batch_parser(step, what: str, checkpoints: bool = False, outputs: bool = False):
    """The parser of a step that reads one batch of a preprocessed file (densify options included); with
    ``checkpoints`` its ``--checkpoint-dir``, with ``outputs`` its ``--output`` / ``--heldout-table``."""
    p = cli.parser(step, DENSIFY)
    p.add_argument("--input", required=True, help="preprocessed .h5ad (results/preprocess/<dataset>.h5ad)")
    p.add_argument("--batch", default=None, help=f"obs['batch'] value to {what} (default: all cells)")
    if checkpoints:
        p.add_argument("--checkpoint-dir", default=None,
                       help="folder (or s3:// URL) for per-epoch checkpoints (resumed when they belong to this run)")
    if outputs:
        p.add_argument("--output", required=True, help="output .h5ad")
        p.add_argument("--heldout-table", required=True, help="held-out metrics .tsv")
    return p


def _options_and_batch(args):
    """(options, checked counts of the batch) of a step built by `_batch_parser`."""
    from .pipeline import check_options, validate_input
    opts = DENSIFY.from_args(args)
    check_options(opts)
    return opts, validate_input(args.input, args.batch, opts)


def _write_outputs(args, data, make_table) -> int:
    """Write the output .h5ad and held-out table (all or nothing): ``make_table(source)`` writes the .h5ad and
    returns the table."""
    with io.all_or_nothing(args.output, args.heldout_table):
        io.write_table(make_table(dict(input=str(args.input), batch=args.batch)), args.heldout_table)
    cli.LOG.info("wrote %s (%d cells x %d genes) and %s", args.output, data.n_obs, data.n_vars, args.heldout_table)
    return 0


def densify(argv=None) -> int:
    """Densify one batch of a preprocessed count matrix with NeuMF (held-out evaluation included)."""
    args = cli.start(_batch_parser(densify, "densify", checkpoints=True, outputs=True), argv)
    from .pipeline import densify_batch, prepare_tf
    opts, data = _options_and_batch(args)
    strategy = prepare_tf(opts, args.threads)
    return _write_outputs(args, data, lambda source: densify_batch(
        data, opts, strategy, args.output, checkpoint_dir=remote.stage(args.checkpoint_dir), source=source))


def densify_train(argv=None) -> int:
    """Train NeuMF on one batch (held-out entries hidden) and write the model file for the prediction shards."""
    p = _batch_parser(densify_train, "train on", checkpoints=True)
    p.add_argument("--model", required=True, help="model file to write (.npz, scfactor.core.checkpoint format)")
    args = cli.start(p, argv)
    from .pipeline import prepare_tf, train_model
    opts, data = _options_and_batch(args)
    strategy = prepare_tf(opts, args.threads)
    train_model(data, opts, strategy, args.model, checkpoint_dir=remote.stage(args.checkpoint_dir))
    return 0


def densify_predict(argv=None) -> int:
    """Predict one shard (a contiguous range of whole prediction blocks) of the dense matrix from a model file."""
    p = cli.parser(densify_predict, DENSIFY)
    p.add_argument("--model", required=True, help="model file of densify_train.py")
    p.add_argument("--shard", required=True, type=int, help="this shard's number, 0 .. --shards - 1")
    p.add_argument("--shards", required=True, type=cli.positive_int, help="number of prediction shards")
    p.add_argument("--output", required=True, help="shard file to write (float32 .npy, the shard's cells x genes)")
    args = cli.start(p, argv)
    if not 0 <= args.shard < args.shards:
        raise ScfactorError(f"--shard {args.shard} is not between 0 and --shards - 1 ({args.shards - 1})")
    from .pipeline import check_options, predict_shard, prepare_tf
    opts = DENSIFY.from_args(args)
    check_options(opts)
    strategy = prepare_tf(opts, args.threads)
    start, stop = predict_shard(args.model, opts, strategy, args.shard, args.shards, args.output)
    cli.LOG.info("wrote %s (cells %d:%d)", args.output, start, stop)
    return 0


def densify_gather(argv=None) -> int:
    """Write the densify output of one batch from the prediction shards and score the held-out entries."""
    p = _batch_parser(densify_gather, "densify", outputs=True)
    p.add_argument("--model", required=True, help="model file of densify_train.py")
    p.add_argument("--predictions", required=True, nargs="+", help="the shard files of densify_predict.py, in order")
    args = cli.start(p, argv)
    from .pipeline import gather_batch
    opts, data = _options_and_batch(args)
    return _write_outputs(args, data, lambda source: gather_batch(
        data, opts, args.model, args.predictions, args.output, source=source))


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
    fig = heldout_figure(args.input, args.title or Path(args.input).stem)
    save_figure(fig, args.figure)
    cli.LOG.info("wrote %s", args.figure)
    return 0
