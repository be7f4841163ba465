#!/usr/bin/env python
"""Render config/README.md from the schemas (`scfactor.core.steps.config_docs`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.core.steps import config_docs  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(config_docs))
