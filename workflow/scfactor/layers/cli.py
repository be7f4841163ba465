"""Command lines of the multilayer NMF scripts; every option comes from the schemas.

``workflow/scripts/layers.py`` (fit), ``layers_theta_clustermap.py`` and ``layers_gene_loading.py``
(figures of a fit) take schema ``layers``; ``simulate_blocks.py`` takes schema ``simulate_blocks``.
"""

from __future__ import annotations

from pathlib import Path

from ..core import cli, io
from ..core.options import Group, Step

#: the figure settings of schema ``layers`` (not options of the fit)
_FIGURE_KEYS = ("top_n", "max_thresh", "max_rows")

FIT = Step("layers", Group("layers", exclude=("datasets",) + _FIGURE_KEYS))
THETA_FIGURE = Step("layers_theta_clustermap", Group("layers", include=("max_rows", "seed", "label_key")))
LOADING_FIGURE = Step("layers_gene_loading", Group("layers", include=("top_n", "max_thresh")))
SIMULATE = Step("simulate_blocks", Group("simulate_blocks"))


def layers(argv=None) -> int:
    """Fit the multilayer NMF notebook's model (X ~ theta1 theta2 ... beta) to a preprocessed .h5ad.

    Output ``.h5ad`` (cells x genes, no X): ``uns['theta_l<l>']`` (cells x k1, then k_{l-1} x k_l),
    ``varm['beta_l<l>']`` (genes x k_l), ``obsm['X_layers']`` (cells x k_L: theta1 ... theta_L),
    ``obs['layers_factor']`` (argmax factor), ``uns['layers']`` (options, loss trace, fit time). Tables:
    the loss per epoch; metrics (``ari_label`` when labelled; factor recovery when the input carries a
    simulation's truth: ``obsm['theta_true']``, ``varm['beta_true']``, ``obs['block']``).
    """
    p = cli.parser(layers, FIT)
    p.add_argument("--input", required=True, help="preprocessed .h5ad (see docs/CONVENTIONS.md)")
    p.add_argument("--output", required=True, help="fitted factors .h5ad")
    p.add_argument("--loss-table", required=True, help="loss per epoch .tsv")
    p.add_argument("--metrics", required=True, help="metrics .tsv (recovery vs truth when present)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="folder (or s3:// URL) of the minibatch fit's per-epoch state (above minibatch_cells; "
                        "resumed when it belongs to this run, removed at the end)")
    args = cli.start(p, argv)
    import torch
    torch.set_num_threads(args.threads)
    from ..core import remote
    from .pipeline import layers as run
    ckpt = remote.stage(args.checkpoint_dir)
    out = run(args.input, FIT.from_args(args), checkpoint_dir=ckpt)
    with io.all_or_nothing(args.loss_table, args.metrics, args.output):
        io.write_table(out.loss, args.loss_table)
        io.write_table(out.metrics, args.metrics)
        io.write_h5ad(out.adata, args.output)
    remote.remove(ckpt)
    cli.LOG.info("wrote %s", args.output)
    return 0


def layers_theta_clustermap(argv=None) -> int:
    """Clustermap of one layer's theta of a multilayer NMF fit (the notebook's sns.clustermap of uns['theta_l<l>'])."""
    p = cli.parser(layers_theta_clustermap, THETA_FIGURE)
    p.add_argument("--input", required=True, help="layers .h5ad (uns['theta_l<level>'])")
    p.add_argument("--level", type=cli.positive_int, required=True, help="layer number (1 = cells x k1)")
    p.add_argument("--title", default=None, help="figure title (when absent: file stem and shape)")
    p.add_argument("--figure", required=True, help="figure .png (its .pdf is written beside it)")
    args = cli.start(p, argv)
    from ..core.plotting import figure_paths, save_figure
    from .pipeline import load_fit
    from .plots import theta_clustermap
    figure_paths(args.figure)  # a bad figure name fails before any work
    opts = THETA_FIGURE.from_args(args)
    adata, theta = load_fit(args.input, "theta", args.level)
    labels = None  # only layer 1 (cells x k1) has a row per cell to colour
    if args.level == 1 and opts.label_key in adata.obs:
        import pandas as pd

        from ..core.metrics import label_strings
        labels = pd.Series(label_strings(adata.obs[opts.label_key]), dtype=object).fillna("unlabelled").to_numpy()
    elif args.level == 1:
        cli.LOG.warning("cells not coloured by label: %s has no obs column %r (label_key; %d cells)", args.input,
                        opts.label_key, adata.n_obs)
    title = args.title or f"{Path(args.input).stem}: theta_l{args.level} ({theta.shape[0]} x {theta.shape[1]})"
    grid = theta_clustermap(theta, args.level, title, max_rows=opts.max_rows, seed=opts.seed, row_labels=labels,
                            label_name=opts.label_key)
    save_figure(grid, args.figure)
    return 0


def layers_gene_loading(argv=None) -> int:
    """Top gene loadings per factor of one layer (the notebook's plot_gene_loading on varm['beta_l<l>'])."""
    p = cli.parser(layers_gene_loading, LOADING_FIGURE)
    p.add_argument("--input", required=True, help="layers .h5ad (varm['beta_l<level>'])")
    p.add_argument("--level", type=cli.positive_int, required=True, help="layer number (1 = cells x k1)")
    p.add_argument("--title", default=None, help="figure title (when absent: file stem, top_n and layer)")
    p.add_argument("--figure", required=True, help="figure .png (its .pdf is written beside it)")
    args = cli.start(p, argv)
    from ..core.plotting import figure_paths, save_figure
    from .pipeline import load_fit
    from .plots import gene_loading_clustermap
    figure_paths(args.figure)
    opts = LOADING_FIGURE.from_args(args)
    adata, beta = load_fit(args.input, "beta", args.level)
    title = args.title or f"{Path(args.input).stem}: top {opts.top_n} genes per factor, beta_l{args.level}"
    grid = gene_loading_clustermap(beta, adata.var_names, args.level, title, top_n=opts.top_n,
                                   max_thresh=opts.max_thresh)
    save_figure(grid, args.figure)
    return 0


def simulate_blocks(argv=None) -> int:
    """Simulate the multilayer NMF notebook's Poisson-Gamma block counts (generate_data(N, K, M, mode='block')).

    Writes an ``.h5ad`` (CSR int32 counts in ``X``, ``obs['block']``/``var['block']`` labels, truth in
    ``obsm['theta_true']`` (cells x K) and ``varm['beta_true']`` (genes x K), settings in
    ``uns['simulate']``) and, with ``--nnmf-h5``, the same counts in neuralNMF's ``write_h5`` layout.
    Same seed, same numbers.
    """
    p = cli.parser(simulate_blocks, SIMULATE)
    p.add_argument("--output", required=True, help="counts + truth .h5ad")
    p.add_argument("--nnmf-h5", default=None, help="also write the counts in neuralNMF's write_h5 layout")
    args = cli.start(p, argv)
    from .pipeline import simulate_blocks as run
    from .simulate import write_nnmf_h5
    adata = run(SIMULATE.from_args(args))
    outputs = [args.output] + ([args.nnmf_h5] if args.nnmf_h5 else [])
    with io.all_or_nothing(*outputs):
        if args.nnmf_h5:
            with io.atomic_output(args.nnmf_h5) as tmp:
                write_nnmf_h5(tmp, list(adata.obs_names), list(adata.var_names), adata.X)
        io.write_h5ad(adata, args.output)
    return 0
