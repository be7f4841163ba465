#!/usr/bin/env python
"""Select one tissue's MTL genes (`scfactor.mtl.cli.mtl_select_genes`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.mtl.cli import mtl_select_genes  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(mtl_select_genes))
