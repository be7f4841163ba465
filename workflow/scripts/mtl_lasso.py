#!/usr/bin/env python
"""Per-gene lasso baseline of one tissue on the MTL splits (`scfactor.mtl.cli.mtl_lasso`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.mtl.cli import mtl_lasso  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(mtl_lasso))
