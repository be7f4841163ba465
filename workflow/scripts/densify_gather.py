#!/usr/bin/env python
"""densify fan-out: gather (`scfactor.densify.cli.densify_gather`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.densify.cli import densify_gather  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(densify_gather))
