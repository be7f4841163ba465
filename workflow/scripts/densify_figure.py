#!/usr/bin/env python
"""Plot NeuMF held-out predictions vs observed counts (next to the SVD baseline) and the loss trace."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor.core import cli, io  # noqa: E402
from scfactor.plots_densify import heldout_figure  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="densify output .h5ad")
    p.add_argument("--title", default="", help="figure title (e.g. dataset and batch)")
    p.add_argument("--output", required=True, help="figure .png")
    p.add_argument("--output-pdf", default=None, help="the same figure as .pdf")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.set_threads(args.threads)
    adata = io.read_h5ad(args.input)
    fig = heldout_figure(adata, args.input, args.title or Path(args.input).stem)
    if args.output_pdf:
        from scfactor.core.io import atomic_output
        with atomic_output(args.output_pdf) as tmp:
            fig.savefig(tmp, format="pdf", bbox_inches="tight")
    io.save_figure(fig, args.output)
    cli.LOG.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
