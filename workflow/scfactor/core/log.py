"""The package logger, its set-up, and progress lines (epoch, loss, rate, ETA) for long jobs."""

from __future__ import annotations

import logging
import sys
import time

LOG = logging.getLogger("scfactor")


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr (which the rules redirect into their Snakemake log) with timestamps."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


class Progress:
    """Logs ``<what> <i>/<total>: <fields>, <rate>/s, ETA <s>`` after each unit of a long loop.

    ``start`` is the first unit of this process (a resumed run's ETA counts only what is left).
    """

    def __init__(self, what: str, total: int, start: int = 0, unit: str = "epochs"):
        self.what, self.total, self.start, self.unit = what, int(total), int(start), unit
        self.t0 = time.perf_counter()

    def eta(self, done: int) -> float:
        """Seconds left after ``done`` units, at this process's rate so far."""
        el = time.perf_counter() - self.t0
        n = max(1, done - self.start)
        return el / n * max(0, self.total - done)

    def log(self, done: int, **fields) -> None:
        """One progress line after ``done`` units; ``fields`` are printed as ``name value``."""
        el = time.perf_counter() - self.t0
        rate = (done - self.start) / el if el > 0 else float("nan")
        text = ", ".join(f"{k.replace('_', ' ')} {v:.6g}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
                         for k, v in fields.items())
        LOG.info("%s %d/%d: %s (%.2f %s/s, ETA %.0f s)", self.what, done, self.total, text, rate, self.unit,
                 self.eta(done))
