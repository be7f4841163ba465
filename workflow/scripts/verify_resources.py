#!/usr/bin/env python
"""Verify the bundled reference data against its checksums (`scfactor.core.steps.verify_resources`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.core.steps import verify_resources  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(verify_resources))
