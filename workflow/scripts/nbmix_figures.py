#!/usr/bin/env python
"""Figures of one NB-mixture run: UMAP (labels / Leiden / NB mixture), responsibilities vs labels, Poisson vs NB."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from scfactor.core import cli, io, metrics  # noqa: E402
from scfactor.core.errors import InputError  # noqa: E402
from scfactor.models import nbmix_io, nbmix_plots  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--nbmix", required=True, help="output .h5ad of nbmix_fit.py")
    p.add_argument("--leiden", required=True, help="output .h5ad of nbmix_leiden.py (UMAP, Leiden)")
    p.add_argument("--dataset", default=None, help="name shown in titles")
    p.add_argument("--umap", required=True, nargs="+", help="UMAP triptych (.png and/or .pdf)")
    p.add_argument("--correlation", required=True, nargs="+", help="responsibility-label correlation figure(s)")
    p.add_argument("--poisson-nb", required=True, nargs="+", help="Poisson vs NB log-likelihood figure(s)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    fit = io.read_h5ad(args.nbmix)
    base = io.read_h5ad(args.leiden)
    for path, a, keys in ((args.nbmix, fit, ("nbmix",)), (args.leiden, base, ("leiden",))):
        missing = [k for k in keys if k not in a.obs]
        if missing:
            raise InputError(path, f"has no obs[{missing[0]!r}]; is it the right step's output?")
    if "X_umap" not in base.obsm:
        raise InputError(args.leiden, "has no obsm['X_umap']")
    if not fit.obs_names.equals(base.obs_names):
        raise InputError(args.leiden, f"cells differ from {args.nbmix} (run both on the same dataset settings)")
    dataset = args.dataset or fit.uns.get("nbmix", {}).get("dataset", Path(args.nbmix).stem)
    kind = str(fit.uns.get("nbmix", {}).get("label_kind", "none"))
    labels = nbmix_io.labels_of(fit, kind)
    label_title = nbmix_io.LABEL_KIND_TEXT[kind].capitalize() if labels is not None else None
    figs = {}
    figs["umap"] = nbmix_plots.umap_triptych(base.obsm["X_umap"], labels, label_title,
                                             base.obs["leiden"].to_numpy(), fit.obs["nbmix"].to_numpy(), dataset)
    resp = np.asarray(fit.obsm["nbmix_resp"])
    if labels is not None and metrics.labelled_mask(labels).any():
        keep = metrics.labelled_mask(labels)
        lab, lab_title = labels[keep], label_title
    else:  # no labels: describe the NB mixture's own clusters
        keep = np.ones(fit.n_obs, bool)
        lab, lab_title = fit.obs["nbmix"].astype(str).to_numpy(), "NB-mixture clusters (no labels)"
    r, names = metrics.label_correlation(lab, resp[keep])
    figs["correlation"] = nbmix_plots.correlation_heatmap(r, names, lab_title, dataset)
    from scfactor.models.nbmix import fit_labels
    names, nb_ll, pois_ll, _, _ = fit_labels(fit.X[keep], lab)
    figs["poisson_nb"] = nbmix_plots.poisson_vs_nb(names, nb_ll, pois_ll, lab_title.lower(), dataset)
    for key, paths in (("umap", args.umap), ("correlation", args.correlation), ("poisson_nb", args.poisson_nb)):
        for i, path in enumerate(paths):
            fig = figs[key]
            if i == len(paths) - 1:
                io.save_figure(fig, path)
            else:
                with io.atomic_output(path) as tmp:
                    fig.savefig(tmp, dpi=150, bbox_inches="tight", format=Path(path).suffix.lstrip("."))
    cli.LOG.info("wrote figures for %s", dataset)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
