#!/usr/bin/env python
"""Check of the kNN label transfer used for the Kang stim arm: marker means per group.

    python benchmarks/grn/label_transfer.py results/preprocess/kang.h5ad [more preprocessed kang .h5ad ...]

For each file: how many stim cells are labelled before / after `transfer_labels` (k=15, 30 PCs,
min agreement 0.6, the config defaults), and the mean log expression of monocyte, T-cell and interferon
markers in ctrl CD14 monocytes, transferred stim CD14 monocytes, GEO-labelled stim CD14 monocytes and
stim CD4 T cells. Writes benchmarks/results/grn_label_transfer.tsv.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))

from scfactor.grn.inputs import transfer_labels  # noqa: E402
from scfactor.core.io import read_h5ad  # noqa: E402

MARKERS = ["CD14", "LYZ", "FCGR3A", "CD3E", "ISG15", "IFIT1"]


def main(argv=None):
    files = (argv if argv is not None else sys.argv[1:]) or [str(REPO / "results/preprocess/kang.h5ad")]
    rows = []
    for f in files:
        a = read_h5ad(f)
        lab = transfer_labels(a, k=15, n_pcs=30, min_agreement=0.6, seed=0)
        orig = a.obs["label"].astype(object)
        stim = (a.obs["batch"] == "stim").to_numpy()
        mono = (lab == "CD14+ Monocytes").to_numpy()
        groups = {"ctrl CD14 mono (GEO + transferred)": ~stim & mono,
                  "stim CD14 mono (transferred)": stim & mono & orig.isna().to_numpy(),
                  "stim CD14 mono (GEO label)": stim & (orig == "CD14+ Monocytes").to_numpy(),
                  "stim CD4 T (GEO + transferred)": stim & (lab == "CD4 T cells").to_numpy()}
        for name, sel in groups.items():
            row = {"file": Path(f).name, "cells": a.n_obs, "stim_labelled_before": int(orig[stim].notna().sum()),
                   "stim_labelled_after": int(lab[stim].notna().sum()), "group": name, "n": int(sel.sum())}
            for g in MARKERS:
                j = int(np.flatnonzero(a.var_names == g)[0])
                row[g] = round(float(a.X[sel][:, j].mean()), 3)
            rows.append(row)
    df = pd.DataFrame(rows)
    out = REPO / "benchmarks/results/grn_label_transfer.tsv"
    df.to_csv(out, sep="\t", index=False)
    print(df.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
