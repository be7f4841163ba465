#!/usr/bin/env python
"""Fit the NB mixture to one run (`scfactor.nbmix.cli.nbmix_fit`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.nbmix.cli import nbmix_fit  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(nbmix_fit))
