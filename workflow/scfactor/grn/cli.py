"""Command lines of the GRN steps (``workflow/scripts/grn*.py``); options from ``grn.schema.yaml``."""

from __future__ import annotations

from ..core import cli, io
from ..core.options import Group, Step

#: the global ``grn`` settings (the figure size is the figures' own) and one entry of ``grn.transitions``
#: (its data set and prior name choose input files; the rule resolves them)
GRN = Step("grn", Group("grn", exclude=("heatmap_edges",)), Group("grn", "transitions.*", exclude=("dataset", "prior")))
#: the figures of one transition
FIGURES = Step("grn_figures", Group("grn", include=("heatmap_edges",)))
#: the summary table has no options of its own
SUMMARY = Step("grn_summary")


def grn(argv=None) -> int:
    """Prior-masked GRN for one cell-state transition A -> B: masked linear model + masked MLP."""
    p = cli.parser(grn, GRN)
    p.add_argument("--input", required=True, help="preprocessed .h5ad (log-normalised X, obs label/batch)")
    p.add_argument("--prior-file", required=True, help="prior network: DoRothEA .csv or TRRUST .tsv (format: --prior)")
    p.add_argument("--name", default="transition", help="transition name recorded in the outputs")
    p.add_argument("--edges", required=True, help="output edge table .tsv")
    p.add_argument("--weights", required=True, help="output weight matrix and test predictions .npz")
    p.add_argument("--r2", required=True, help="output held-out R2 per target .tsv")
    p.add_argument("--metrics", required=True, help="output metrics .tsv")
    args = cli.start(p, argv)
    from .pipeline import infer_grn, write_weights
    out = infer_grn(args.input, args.prior_file, GRN.from_args(args), args.name, threads=args.threads)
    with io.all_or_nothing(args.edges, args.weights, args.r2, args.metrics):
        io.write_table(out.edges, args.edges)
        io.write_table(out.r2, args.r2)
        io.write_table(out.metrics, args.metrics)
        write_weights(out.arrays, args.weights)
    cli.LOG.info("wrote %s, %s, %s, %s", args.edges, args.weights, args.r2, args.metrics)
    return 0


def grn_figures(argv=None) -> int:
    """Figures of one GRN transition: strongest signed edges, residuals, sign agreement (PNG + PDF each)."""
    p = cli.parser(grn_figures, FIGURES)
    p.add_argument("--weights", required=True, help=".npz written by grn.py")
    p.add_argument("--heatmap", required=True, help="output heatmap .png (its .pdf is written beside it)")
    p.add_argument("--residuals", required=True, help="output residual plot .png (+ .pdf)")
    p.add_argument("--signs", required=True, help="output sign-agreement plot .png (+ .pdf)")
    args = cli.start(p, argv)
    from ..core.plotting import figure_paths, save_figure
    from . import plots
    from .pipeline import load_weights
    pngs = (args.heatmap, args.residuals, args.signs)
    paths = [q for png in pngs for q in figure_paths(png)]  # a bad figure name fails before any work
    opts = FIGURES.from_args(args)
    d = load_weights(args.weights)
    with io.all_or_nothing(*paths):
        save_figure(plots.edge_heatmap(d, opts.heatmap_edges), args.heatmap)
        save_figure(plots.residual_plot(d), args.residuals)
        save_figure(plots.sign_plot(d), args.signs)
    cli.LOG.info("wrote %s (and .pdf of each)", ", ".join(pngs))
    return 0


def grn_summary(argv=None) -> int:
    """Collect the metrics of all GRN transitions into one wide table (transition x model:metric)."""
    p = cli.parser(grn_summary, SUMMARY)
    p.add_argument("--metrics", nargs="+", required=True, help="metrics .tsv files written by grn.py")
    p.add_argument("--output", required=True, help="summary .tsv")
    args = cli.start(p, argv)
    from .pipeline import summarise
    wide = summarise(args.metrics)
    io.write_table(wide, args.output)
    cli.LOG.info("wrote %s (%d transitions)", args.output, len(wide))
    return 0
