#!/usr/bin/env python
"""Aggregate MTL shards into one R2 table and per-tissue summaries (`scfactor.mtl.cli.mtl_aggregate`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.mtl.cli import mtl_aggregate  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(mtl_aggregate))
