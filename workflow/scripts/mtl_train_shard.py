#!/usr/bin/env python
"""Train and test one trace-norm MTL shard (`scfactor.mtl.cli.mtl_train_shard`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scfactor.core.cli import run  # noqa: E402
from scfactor.mtl.cli import mtl_train_shard  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run(mtl_train_shard))
