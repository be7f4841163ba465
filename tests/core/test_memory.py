"""`scfactor.core.memory.trim_heap`: memory freed into a fragmented C heap goes back to the system."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from scfactor.core.memory import trim_heap


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        return int(fh.read().split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_trim_heap_returns_freed_heap_pages():
    """3000 arrays of 64 KiB (heap-allocated, below glibc's mapping threshold) freed under a live array allocated
    after them stay resident until `trim_heap`, which releases most of their 188 MiB; the live array is intact."""
    blocks = [np.ones(8192) for _ in range(3000)]
    pin = np.arange(8192, dtype=np.float64)  # above them in the heap: the heap's top cannot shrink past it
    del blocks
    before = _rss_mib()
    trim_heap()
    assert before - _rss_mib() > 100
    assert np.array_equal(pin, np.arange(8192, dtype=np.float64))
