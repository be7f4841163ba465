"""Command lines of the integrate analysis: ``integrate.py``, ``integrate_figures.py``, ``simulate_batches.py``.

Options come from ``workflow/schemas/integrate.schema.yaml`` (plus ``datasets.<name>.batches`` of the top-level
schema) and ``workflow/schemas/simulate_batches.schema.yaml``; only paths and names are written here.
"""

from __future__ import annotations

from ..core import cli, io
from ..core.errors import InputError, ScfactorError
from ..core.options import Group, Step, load_schema, schema_at

#: the integrate section (less what becomes wildcards or rule resources) and the data set's batches
INTEGRATE = Step("integrate", Group("integrate", exclude=("datasets", "sources", "mem_mb")),
                 Group("config", "datasets.*", include=("batches",)))
#: the figures take paths and names only
FIGURES = Step("integrate_figures")
#: simulator (c), ``simulate.batches``
SIMULATE = Step("simulate_batches", Group("simulate_batches"))
#: the inputs the integrate step can read: the items of ``integrate.sources``
SOURCES = tuple(schema_at(load_schema("integrate"), "sources")["items"]["enum"])


def integrate(argv=None) -> int:
    """LIGER-style integration: iNMF (batch or online), quantile normalisation, Leiden, UMAP and metrics.

    Writes an .h5ad with ``obsm['X_inmf']`` (H), ``obsm['X_inmf_norm']``, ``varm['W']``, ``varm['V_<batch>']``,
    ``obs['leiden']``, ``obsm['X_umap']``, the objective trace and metrics in ``uns['inmf']``, and the
    metrics TSV (alignment before/after quantile normalisation, agreement, ARI/NMI per batch with the
    number of labelled cells).
    """
    p = cli.parser(integrate, INTEGRATE)
    p.add_argument("--source", choices=SOURCES, default=SOURCES[0],
                   help="input kind: counts = one preprocessed .h5ad; neumf = one densified .h5ad per batch")
    p.add_argument("--input", nargs="+", required=True,
                   help="counts: one preprocessed .h5ad; neumf: one .h5ad per batch")
    p.add_argument("--output", required=True, help="integrated .h5ad")
    p.add_argument("--metrics", required=True, help="metrics .tsv")
    args = cli.start(p, argv)
    opts = INTEGRATE.from_args(args)
    from ..core.device import configure_torch, torch_device
    from .pipeline import run
    configure_torch(opts.seed, args.threads)
    dev = torch_device(opts.device)
    adata, table = run(args.source, args.input, opts, dev)
    with io.all_or_nothing(args.output, args.metrics):
        io.write_table(table, args.metrics)
        io.write_h5ad(adata, args.output)
    cli.LOG.info("wrote %s and %s", args.output, args.metrics)
    return 0


def _pairs(items, what) -> dict:
    out = {}
    for it in items:
        if "=" not in it:
            raise ScfactorError(f"--{what} expects SOURCE=PATH, got {it!r}")
        k, v = it.split("=", 1)
        out[k] = v
    return out


def integrate_figures(argv=None) -> int:
    """Figures of the integrate step: UMAPs (batch / cluster) per source side by side, and metric bars.

    Each --run is SOURCE=INTEGRATED.h5ad and each --metrics SOURCE=METRICS.tsv (the same sources).
    """
    p = cli.parser(integrate_figures, FIGURES)
    p.add_argument("--dataset", required=True, help="dataset name for titles")
    p.add_argument("--run", nargs="+", required=True, help="SOURCE=integrated.h5ad")
    p.add_argument("--metrics", nargs="+", required=True, help="SOURCE=metrics.tsv")
    p.add_argument("--umap", required=True, help="UMAP figure .png (its .pdf is written beside it)")
    p.add_argument("--bars", required=True, help="metrics figure .png (its .pdf is written beside it)")
    args = cli.start(p, argv)
    from ..core.plotting import figure_paths, save_figure
    from . import plots
    outputs = [*figure_paths(args.umap), *figure_paths(args.bars)]  # a bad figure name fails before any work
    runs = _pairs(args.run, "run")
    mets = _pairs(args.metrics, "metrics")
    if set(runs) != set(mets):
        raise ScfactorError("--run and --metrics must name the same sources")
    adatas = {}   # obs and obsm only: the figures never use the count matrix (GBs at atlas scale)
    for src, path in runs.items():
        with io.h5ad_without_matrices(path) as (adatas[src], _):
            pass
    for src, path in runs.items():
        a = adatas[src]
        if "X_umap" not in a.obsm:
            raise InputError(path, "has no obsm['X_umap']; run the integrate step")
        for key in ("batch", "leiden"):
            if key not in a.obs:
                raise InputError(path, f"has no obs[{key!r}]; run the integrate step")
    tables = {}
    for src, path in mets.items():
        t = io.read_table(path)
        io.require_columns(t, ["metric", "batch", "value", "n_cells"], path, "metrics table")
        tables[src] = t
    with io.all_or_nothing(*outputs):
        save_figure(plots.umap_figure(adatas, args.dataset), args.umap)
        save_figure(plots.metrics_figure({s: tables[s] for s in adatas}, args.dataset), args.bars)
    return 0


def simulate_batches(argv=None) -> int:
    """Simulate batches sharing iNMF factors plus batch-specific factors (Poisson counts, with truth).

    Writes one .h5ad: raw counts in X, obs['batch'], obs['label'] (planted groups), and the ground
    truth: obsm['H_true'], obsm['Hspec_true'], varm['W_true'], varm['V_true_<batch>'],
    varm['S_true_<batch>'], uns['simulate_batches']. Same seed -> same counts.
    """
    p = cli.parser(simulate_batches, SIMULATE)
    p.add_argument("--output", required=True, help="output .h5ad")
    args = cli.start(p, argv)
    from .simulate import check_settings, write_simulation
    s = SIMULATE.from_args(args)
    check_settings(s)
    info = write_simulation(s, args.output)
    cli.LOG.info("wrote %s: %d cells x %d genes, %d non-zeros, batches %s", args.output, info["cells"],
                 info["genes"], info["nnz"], ", ".join(info["batches"]))
    return 0
