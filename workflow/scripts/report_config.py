#!/usr/bin/env python
"""The run's configuration as a table for the report (`scfactor.core.steps.report_config`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.core.steps import report_config  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(report_config))
