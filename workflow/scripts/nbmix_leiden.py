#!/usr/bin/env python
"""Leiden baseline of one NB-mixture run (`scfactor.nbmix.cli.nbmix_leiden`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.nbmix.cli import nbmix_leiden  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(nbmix_leiden))
