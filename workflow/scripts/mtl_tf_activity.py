#!/usr/bin/env python
"""Gene x TF mean/sum activity tables (seed 001 layout) from a DoRothEA-style prior, TFs from a census.

Stand-in for the seed's ATAC-derived activities (none exist for the bundled data): mean = mode of
regulation x confidence weight, sum = confidence weight x the TF's mean CPM in the tissue. TFs are
the census (human symbols, mapped to mouse with an ortholog table when --species mouse) that are
expression columns. Writes tf_list.csv and tf_activity/{mean_tf,sum_tf}/<tissue>.csv.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from scfactor.core import cli, io  # noqa: E402
from scfactor import mtl_layout as L  # noqa: E402
from scfactor.core.errors import InputError  # noqa: E402
from scfactor.models.mtl_velocity import mouse_tf_symbols, prior_activity  # noqa: E402


def build_parser():
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--layout", required=True, help="layout root holding rpkm.hdf5 and velo.hdf5")
    p.add_argument("--prior", required=True, help="CSV with columns tf, confidence, target, mor")
    p.add_argument("--tf-list", required=True, help="TF census, one human symbol per line")
    p.add_argument("--orthologs", default=None, help="headerless CSV human,mouse symbols (needed for mouse)")
    p.add_argument("--species", choices=["human", "mouse"], default="mouse")
    p.add_argument("--confidence", nargs="+", default=["A", "B", "C"], help="prior confidence levels kept")
    p.add_argument("--tissues", nargs="+", required=True, help="tissue groups (sanitised names)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.setup_logging(args.verbose)
    root = Path(args.layout)
    prior = io.read_table(args.prior)
    io.require_columns(prior, ["tf", "confidence", "target", "mor"], args.prior, "prior")
    census = io.read_lines(args.tf_list)
    if args.species == "mouse":
        if not args.orthologs:
            raise InputError(args.tf_list, "a human TF list needs --orthologs to map to mouse")
        orth = io.read_table(args.orthologs, header=None, dtype=str)
        if orth.shape[1] < 2:
            raise InputError(args.orthologs, "needs two columns: human symbol, mouse symbol")
        tfs = mouse_tf_symbols(census, orth.iloc[:, :2])
    else:
        tfs = set(census)
    tables = {}
    tf_cols = set()
    for t in args.tissues:
        vgenes = L.hdf5_genes(root / L.VELO, t, "velo")
        present = [g for g in L.hdf5_genes(root / L.RPKM, t, "exp") if g in tfs]
        if not present:
            raise InputError(args.tf_list, f"none of its TFs is an expression column of tissue {t!r}")
        tf_cols |= set(present)
        expr, _, _ = L.read_hdf5_matrix(root / L.RPKM, t, "exp", genes=present)
        cpm = pd.Series(expr.mean(0), index=present)
        mean, summ = prior_activity(prior, present, vgenes, cpm, tuple(args.confidence))
        if mean.shape[0] == 0:
            raise InputError(args.prior, f"no edge from an expressed TF to a velocity gene of tissue {t!r}")
        tables[t] = (mean, summ)
        cli.LOG.info("tissue %s: %d TFs expressed, %d with prior targets, %d edges", t, len(present),
                     mean.shape[0], int((mean.to_numpy() != 0).sum()))
    for t, (mean, summ) in tables.items():
        L.write_activity(root / L.MEAN_DIR / f"{t}.csv", mean)
        L.write_activity(root / L.SUM_DIR / f"{t}.csv", summ)
    with io.atomic_output(root / L.TF_LIST) as tmp:
        pd.DataFrame({"Ensembl ID": sorted(tf_cols)}).to_csv(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
