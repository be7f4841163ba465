"""Command lines of the nbmix scripts (``workflow/scripts/{nbmix_fit,nbmix_leiden,nbmix_figures,nbmix_summary,
simulate_nbmix}.py``); their options come from ``nbmix.schema.yaml`` and ``simulate_nbmix.schema.yaml``."""

from __future__ import annotations

from pathlib import Path

from ..core import cli, io
from ..core.options import Group, Step

#: the run's entry (``nbmix.runs.<run>``); the baseline does not take ``k``
_RUN = Group("nbmix", "runs.*")
#: the NB mixture: the global ``nbmix`` settings (its leiden initialisation takes the baseline's resolution)
#: and the run's entry
FIT = Step("nbmix_fit", Group("nbmix", exclude=("leiden.n_pcs", "leiden.n_neighbors", "leiden.seed",
                                                "leiden.umap_max_cells", "figure_max_cells")), _RUN)
#: the Leiden baseline: ``nbmix.leiden`` and the run's entry
LEIDEN = Step("nbmix_leiden", Group("nbmix", "leiden"), Group("nbmix", "runs.*", exclude=("k",)))
#: the figures: the subsample of the Poisson-vs-NB figure; the summary has no schema options
FIGURES = Step("nbmix_figures", Group("nbmix", include=("figure_max_cells", "seed")))
SUMMARY = Step("nbmix_summary")
#: one entry of ``simulate.nbmix``
SIMULATE = Step("simulate_nbmix", Group("simulate_nbmix", "*"))


def nbmix_fit(argv=None) -> int:
    """Cluster cells with a negative-binomial mixture (batch EM or amortised inference), scored against labels."""
    p = cli.parser(nbmix_fit, FIT)
    p.add_argument("--input", required=True, help="preprocessed or simulated .h5ad")
    p.add_argument("--dataset", default=None, help="name recorded in outputs (default: the input's stem)")
    p.add_argument("--output", required=True, help="output .h5ad (clusters, responsibilities, parameters)")
    p.add_argument("--metrics", required=True, help="one-row metrics .tsv")
    p.add_argument("--trace", required=True, help="log-likelihood (EM) / ELBO (amortised) trace .tsv")
    args = cli.start(p, argv)
    from .pipeline import fit
    cli.set_threads(args.threads)  # again, now that torch is imported
    out = fit(args.input, FIT.from_args(args), args.dataset)
    with io.all_or_nothing(args.output, args.metrics, args.trace):
        io.write_table(out.trace, args.trace)
        io.write_table(out.metrics, args.metrics)
        io.write_h5ad(out.adata, args.output)
    cli.LOG.info("wrote %s, %s, %s", args.output, args.metrics, args.trace)
    return 0


def nbmix_leiden(argv=None) -> int:
    """Leiden baseline: normalise, log1p, PCA, k-NN graph, Leiden and UMAP (scanpy), scored against labels."""
    p = cli.parser(nbmix_leiden, LEIDEN)
    p.add_argument("--input", required=True, help="preprocessed or simulated .h5ad")
    p.add_argument("--dataset", default=None, help="name recorded in outputs (default: the input's stem)")
    p.add_argument("--output", required=True, help="output .h5ad (obs['leiden'], obsm['X_pca'], obsm['X_umap'])")
    p.add_argument("--metrics", required=True, help="one-row metrics .tsv")
    args = cli.start(p, argv)
    from .pipeline import leiden
    out = leiden(args.input, LEIDEN.from_args(args), args.dataset)
    with io.all_or_nothing(args.output, args.metrics):
        io.write_table(out.metrics, args.metrics)
        io.write_h5ad(out.adata, args.output)
    cli.LOG.info("wrote %s, %s", args.output, args.metrics)
    return 0


def nbmix_figures(argv=None) -> int:
    """Figures of one NB-mixture run: UMAP (labels / Leiden / NB mixture), responsibilities vs labels, Poisson vs NB."""
    p = cli.parser(nbmix_figures, FIGURES)
    p.add_argument("--nbmix", required=True, help="output .h5ad of nbmix_fit.py")
    p.add_argument("--leiden", required=True, help="output .h5ad of nbmix_leiden.py (UMAP, Leiden)")
    p.add_argument("--dataset", default=None, help="name shown in titles")
    p.add_argument("--umap", required=True, help="UMAP triptych .png (its .pdf is written beside it)")
    p.add_argument("--correlation", required=True, help="responsibility-label correlation .png (and .pdf)")
    p.add_argument("--poisson-nb", required=True, help="Poisson vs NB log-likelihood .png (and .pdf)")
    args = cli.start(p, argv)
    from ..core.plotting import figure_paths, save_figure
    from .pipeline import figures
    outputs = {"umap": args.umap, "correlation": args.correlation, "poisson_nb": args.poisson_nb}
    paths = [q for png in outputs.values() for q in figure_paths(png)]  # a bad name fails before any work
    opts = FIGURES.from_args(args)
    figs = figures(args.nbmix, args.leiden, args.dataset, max_cells=opts.figure_max_cells, seed=opts.seed)
    with io.all_or_nothing(*paths):
        for key, png in outputs.items():
            save_figure(figs[key], png)
    cli.LOG.info("wrote the figures of %s", args.dataset or Path(args.nbmix).parent.name)
    return 0


def nbmix_summary(argv=None) -> int:
    """Collect NB-mixture and Leiden metrics tables into one table (TSV) and a table figure."""
    p = cli.parser(nbmix_summary, SUMMARY)
    p.add_argument("--metrics", required=True, nargs="+", help="one-row metrics .tsv files")
    p.add_argument("--output", required=True, help="summary .tsv")
    p.add_argument("--figure", required=True, help="table figure .png (its .pdf is written beside it)")
    args = cli.start(p, argv)
    from ..core.plotting import figure_paths, save_figure
    from .pipeline import summary
    figure_paths(args.figure)  # a bad figure name fails before any work
    table, fig = summary(args.metrics)
    with io.all_or_nothing(args.output, *figure_paths(args.figure)):
        io.write_table(table, args.output)
        save_figure(fig, args.figure)
    cli.LOG.info("wrote %s (%d rows)", args.output, len(table))
    return 0


def simulate_nbmix(argv=None) -> int:
    """Simulate the model-based clustering notebook's NB mixture (counts, obs['label'] = true component, truth)."""
    p = cli.parser(simulate_nbmix, SIMULATE)
    p.add_argument("--name", default=None, help="simulation name recorded in uns['simulate'] (default: the "
                                                 "output's stem)")
    p.add_argument("--output", required=True, help="output .h5ad")
    args = cli.start(p, argv)
    from .simulate import simulate_anndata
    o = SIMULATE.from_args(args)
    adata = simulate_anndata(o.n, o.p, o.k, o.s, o.seed, args.name or Path(args.output).stem)
    empty = int((adata.X.sum(axis=1) == 0).sum())
    if empty:
        cli.LOG.warning("%d simulated cells have no counts", empty)
    io.write_h5ad(adata, args.output)
    cli.LOG.info("wrote %s: %d cells x %d genes, k=%d, seed=%d", args.output, o.n, o.p, o.k, o.seed)
    return 0
