#!/usr/bin/env python
"""Figures of one GRN transition (seed 003): strongest signed edges, residuals, sign agreement.

Reads the ``.npz`` written by grn.py; writes each figure as PNG and PDF (the PDF next to the PNG).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from scfactor.core import cli, io
from scfactor import grn_plots  # noqa: E402
from scfactor.core.errors import InputError  # noqa: E402

REQUIRED = ("weight", "mask", "prior_sign", "tfs", "targets", "y_test", "pred_linear", "r2_linear", "transition")


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help=".npz written by grn.py")
    p.add_argument("--heatmap-edges", type=int, default=40, help="strongest edges in the heatmap")
    p.add_argument("--heatmap", required=True, help="output heatmap .png (a .pdf is written beside it)")
    p.add_argument("--residuals", required=True, help="output residual plot .png (+ .pdf)")
    p.add_argument("--signs", required=True, help="output sign-agreement plot .png (+ .pdf)")
    return p


def load(path) -> dict:
    """The arrays of a grn.py .npz, validated."""
    io.require_file(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            d = {k: f[k] for k in f.files}
    except Exception as exc:
        raise InputError(path, f"cannot read npz: {str(exc).splitlines()[0]}") from None
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise InputError(path, f"lacks array(s) {', '.join(missing)}; is it a grn.py output?")
    if d["weight"].shape != d["mask"].shape or d["weight"].shape != (len(d["tfs"]), len(d["targets"])):
        raise InputError(path, "weight, mask, tfs and targets have inconsistent shapes")
    return d


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    d = load(args.weights)
    figs = {args.heatmap: grn_plots.edge_heatmap(d, args.heatmap_edges),
            args.residuals: grn_plots.residual_plot(d),
            args.signs: grn_plots.sign_plot(d)}
    for path, fig in figs.items():
        pdf = str(Path(path).with_suffix(".pdf"))
        with io.atomic_output(pdf) as tmp:
            fig.savefig(tmp, format="pdf", bbox_inches="tight")
        io.save_figure(fig, path)
        cli.LOG.info("wrote %s and %s", path, pdf)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
