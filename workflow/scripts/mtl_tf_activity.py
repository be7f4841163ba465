#!/usr/bin/env python
"""Gene x TF activity tables from a DoRothEA-style prior (`scfactor.mtl.cli.mtl_tf_activity`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.mtl.cli import mtl_tf_activity  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(mtl_tf_activity))
