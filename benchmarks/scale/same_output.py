#!/usr/bin/env python
"""Are two preprocessed ``.h5ad`` files the same output? (issue 19: the block-by-block preprocess against the
in-memory one.)

    python benchmarks/scale/same_output.py A.h5ad B.h5ad [--ignore-uns-keys input dataset]

Compares bit for bit: ``X`` and ``layers['counts']`` (values, column indices, row pointers, dtypes of the
values), ``obs``, ``var``, ``obsm``, ``varm``, ``uns`` (minus ``--ignore-uns-keys`` of ``uns['preprocess']``,
which name the input file). Prints one line per element and exits 1 when any differs.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def same_matrix(a, b) -> bool:
    """Same CSR values (and value dtype), column indices and row pointers."""
    return (a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.data, b.data)
            and np.array_equal(a.indices, b.indices) and np.array_equal(a.indptr, b.indptr))


def same_value(a, b) -> bool:
    """Nested equality of uns / obsm values (arrays compared exactly)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


def differences(a, b, ignore=()) -> dict[str, bool]:
    """``{element: same}`` for two AnnData."""
    ua, ub = ({**u, "preprocess": {k: v for k, v in u["preprocess"].items() if k not in ignore}}
              for u in (dict(a.uns), dict(b.uns)))
    return {"X": same_matrix(a.X, b.X), "layers['counts']": same_matrix(a.layers["counts"], b.layers["counts"]),
            "layers": set(a.layers) == set(b.layers), "obs": a.obs.equals(b.obs), "var": a.var.equals(b.var),
            "obsm": same_value(dict(a.obsm), dict(b.obsm)), "varm": same_value(dict(a.varm), dict(b.varm)),
            "uns": same_value(ua, ub)}


def main(argv=None) -> int:
    """Compare; 0 when every element is the same."""
    import anndata as ad
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--ignore-uns-keys", nargs="*", default=["input", "dataset"])
    args = ap.parse_args(argv)
    res = differences(ad.read_h5ad(args.a), ad.read_h5ad(args.b), args.ignore_uns_keys)
    for key, same in res.items():
        print(f"{key}: {'identical' if same else 'DIFFERENT'}")
    return 0 if all(res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
