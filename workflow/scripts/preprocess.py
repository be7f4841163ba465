#!/usr/bin/env python
"""Preprocess a count matrix (`scfactor.preprocess.cli.preprocess`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.preprocess.cli import preprocess  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(preprocess))
