"""Command line of the preprocess step (``workflow/scripts/preprocess.py``); options from the schema."""

from __future__ import annotations

from ..core import cli, io
from ..core.options import Group, Step

#: per-dataset settings (``datasets.<name>``) and the global ``preprocess`` section of config.schema.yaml
STEP = Step("preprocess", Group("config", "datasets.*", exclude=("path", "sheet", "species")),
            Group("config", "preprocess"))


def preprocess(argv=None) -> int:
    """Preprocess a count matrix: read, split by batch, QC-filter, normalise, flag selected genes."""
    p = cli.parser(preprocess, STEP)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="counts: .h5ad, 10x folder, 10x .h5, wide .csv, neuralNMF .h5")
    source.add_argument("--sample-sheet", help="sample sheet (TSV) instead of --input: one row per sample with "
                                               "columns sample, path and optional batch / metadata "
                                               "(docs/own-data.md)")
    p.add_argument("--dataset", default=None, help="data set name recorded in uns (default: the input's stem)")
    p.add_argument("--output", required=True, help="preprocessed .h5ad")
    p.add_argument("--qc-table", required=True, help="per-batch QC summary .tsv")
    p.add_argument("--qc-figure", required=True, help="QC figure .png (its .pdf is written beside it)")
    args = cli.start(p, argv)
    from ..core.plotting import figure_paths, save_figure
    from .pipeline import preprocess as run
    from .write import write_preprocessed
    figure_paths(args.qc_figure)  # a bad figure name fails before any work
    out = run(args.input, STEP.from_args(args), args.dataset, sheet=args.sample_sheet)
    with io.all_or_nothing(args.output, args.qc_table, *figure_paths(args.qc_figure)):
        io.write_table(out.qc_table, args.qc_table)
        save_figure(out.figure, args.qc_figure)
        write_preprocessed(out, args.output)
    cli.LOG.info("wrote %s (%d cells x %d genes)", args.output, out.adata.n_obs, out.adata.n_vars)
    return 0
