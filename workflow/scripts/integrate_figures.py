#!/usr/bin/env python
"""Figures of the integrate step: UMAPs and metric bars (`scfactor.integrate.cli.integrate_figures`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.integrate.cli import integrate_figures  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(integrate_figures))
