"""`core.cli.set_threads` with numba already imported (a step's module imports it before its options are
parsed): numba's thread pool must start at the step's size, and a later compile must not fail."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

SCRIPT = f"""
import os, sys
sys.path.insert(0, {str(REPO / 'workflow')!r})
os.environ.pop("NUMBA_NUM_THREADS", None)
import numba                                   # config read now: the machine's core count
from scfactor.core.cli import set_threads
set_threads(1)
print(numba.get_num_threads())                 # starts the pool
numba.njit(lambda x: x + 1)(1)                 # a compile re-reads numba's config from the environment
print("ok")
"""


def test_set_threads_after_numba_import_sizes_the_pool():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["1", "ok"]
