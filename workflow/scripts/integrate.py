#!/usr/bin/env python
"""LIGER-style integration (`scfactor.integrate.cli.integrate`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.integrate.cli import integrate  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(integrate))
