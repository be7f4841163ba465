#!/usr/bin/env python
"""Are two preprocessed ``.h5ad`` files the same output? (issue 19: the block-by-block preprocess against the
in-memory one, e.g. the output of another commit.)

    python benchmarks/scale/same_output.py A.h5ad B.h5ad

Compares with `scfactor.preprocess.contract.compare_preprocessed` (``X`` and ``layers['counts']`` bit for bit,
obs, var, obsm, varm, uns less the input's name). Prints one line per element; exits 1 when any differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))


def main(argv=None) -> int:
    """Compare; 0 when every element is the same."""
    import anndata as ad

    from scfactor.preprocess.contract import compare_preprocessed
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args(argv)
    res = compare_preprocessed(ad.read_h5ad(args.a), ad.read_h5ad(args.b))
    for key, same in res.items():
        print(f"{key}: {'identical' if same else 'DIFFERENT'}")
    return 0 if all(res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
