#!/usr/bin/env python
"""Collect the metrics of all GRN transitions (`scfactor.grn.cli.grn_summary`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.grn.cli import grn_summary  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(grn_summary))
