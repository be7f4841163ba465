#!/usr/bin/env python
"""Figures of one NB-mixture run (`scfactor.nbmix.cli.nbmix_figures`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.nbmix.cli import nbmix_figures  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(nbmix_figures))
