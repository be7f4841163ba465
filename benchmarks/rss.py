"""Resident memory of this process, for the benchmarks (standard library only: importable from every venv).

`current_mib` is ``VmRSS``, `peak_mib` the peak since the process started or since the last `reset_peak`
(``VmHWM``; unlike ``ru_maxrss`` it is not inherited over fork / exec), and `reset_peak` sets that peak back to the
current memory (Linux ``/proc/self/clear_refs``), so that one stretch of work gets its own exact peak, short spikes
included, without sampling.
"""

from __future__ import annotations

import resource


def _status_kib(field: str) -> int | None:
    """``field`` (e.g. ``VmRSS``) of ``/proc/self/status`` in KiB, or None where there is no such file."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_mib() -> float:
    """Resident memory of this process now (MiB; NaN where ``/proc`` is missing)."""
    kib = _status_kib("VmRSS")
    return float("nan") if kib is None else kib / 1024


def peak_mib() -> float:
    """Peak resident memory of this process since it started or since the last `reset_peak` (MiB)."""
    kib = _status_kib("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if kib is None else kib / 1024


def reset_peak() -> bool:
    """Set `peak_mib` back to the current memory; False where the kernel does not allow it (the peak then keeps
    counting from the process start)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True
