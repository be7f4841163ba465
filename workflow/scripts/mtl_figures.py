#!/usr/bin/env python
"""MTL figures: R2 per gene vs the lasso / lambda = 0, R2 per gene cluster (`scfactor.mtl.cli.mtl_figures`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.mtl.cli import mtl_figures  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(mtl_figures))
