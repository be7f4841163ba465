#!/usr/bin/env python
"""Where a step's memory peaks: run one ``workflow/scripts`` step in this process and record, at every line it
logs, the exact peak resident memory since its previous line (then reset the peak).

Each row covers the work between two consecutive log lines of the ``scfactor`` logger and is named by the line
that ends it (the last row: from the last line to the end of the step). The kernel's peak (``VmHWM``) is read
and reset at each line (`rss.reset_peak`), so a short spike counts in the row it happened in and in no other.
Every thread pool is set to ``--threads`` before anything is imported; ``--code-commit`` runs that commit's
copy of the script and its package (`child.workflow_of`). ``--split MODULE:FUNCTION`` (repeatable) adds two
boundaries around every call of that function (the module's attribute is wrapped, so callers that look it up
there, such as ``sc.pp.pca``, go through the wrapper): the stretch ending with ``(enter ...)`` is the work before
the call, the one ending with ``(inside ...)`` the call itself, so a step that logs once for several calls gets
one row per call. Writes ``--out``.tsv / .md headed by this command.

    python benchmarks/memory_by_log.py --threads 1 --out benchmarks/results/X -- workflow/scripts/integrate.py ...
    python benchmarks/memory_by_log.py --split scanpy.preprocessing:pca --out ... -- workflow/scripts/nbmix_leiden.py ...
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from child import THREAD_VARS, workflow_of  # noqa: E402
from rss import current_mib, peak_mib, reset_peak  # noqa: E402
from results_file import checkout_commit, command_line, write_results  # noqa: E402


class PeakPerLine:
    """A `logging.Handler` body: at each record, the peak since the previous record and the memory now."""

    def __init__(self):
        self.rows, self.t0 = [], time.perf_counter()
        reset_peak()

    def mark(self, message: str) -> None:
        """Close the current stretch with ``message``: its peak and the memory now (MiB); start the next."""
        self.rows.append({"t_s": round(time.perf_counter() - self.t0, 1), "peak_mib": round(peak_mib(), 1),
                          "rss_after_mib": round(current_mib(), 1), "stretch ending with": message[:140]})
        reset_peak()


def split_at(peaks: PeakPerLine, spec: str) -> None:
    """Wrap the function ``spec`` (``module:function``) so that each call is a stretch of its own."""
    import functools
    import importlib
    mod_name, _, fn_name = spec.partition(":")
    mod = importlib.import_module(mod_name)
    fn = getattr(mod, fn_name)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        peaks.mark(f"(enter {spec})")
        try:
            return fn(*args, **kwargs)
        finally:
            peaks.mark(f"(inside {spec})")
    setattr(mod, fn_name, wrapped)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--code-commit", default=None,
                   help="run this commit's copy of the script (and its package) instead of the working tree's")
    p.add_argument("--split", action="append", default=[], metavar="MODULE:FUNCTION",
                   help="also a boundary before and after every call of this function (repeatable)")
    p.add_argument("script", help="a workflow/scripts/*.py step")
    p.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (after --)")
    a = p.parse_args(argv)
    command = command_line(__file__)
    for var in THREAD_VARS:
        os.environ[var] = str(a.threads)
    import logging
    import runpy

    import pandas as pd

    peaks = PeakPerLine()

    class Handler(logging.Handler):
        def emit(self, record):
            peaks.mark(record.getMessage())

    logging.getLogger("scfactor").addHandler(Handler(logging.DEBUG))
    script_args = a.args[1:] if a.args[:1] == ["--"] else a.args
    script = Path(a.script) if a.code_commit is None else workflow_of(a.code_commit) / "scripts" / Path(a.script).name
    code = checkout_commit(HERE.parent) if a.code_commit is None else script.parents[2].name  # 12 hex digits
    sys.argv = [str(script), *script_args]
    sys.path.insert(0, str(script.resolve().parent))
    sys.path.insert(0, str(script.resolve().parents[1]))  # its package, before --split imports it
    for spec in a.split:
        split_at(peaks, spec)
    rc = 0
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    peaks.mark(f"(end of the step, exit {rc})")
    table = pd.DataFrame(peaks.rows)
    top = table.loc[table.peak_mib.idxmax()]
    intro = (f"Code {code}; {a.threads} thread(s). Peak resident memory of the whole step "
             f"{table.peak_mib.max() / 1024:.2f} GiB, in the stretch ending with: {top['stretch ending with']!r} "
             f"(t = {top.t_s} s). `peak_mib`: the peak within the stretch since the previous log line; "
             "`rss_after_mib`: resident memory at the line. The step's own closing 'peak memory' (and "
             "`/usr/bin/time`'s maximum) read the kernel's peak, which is reset at every line here: they show only "
             "the last stretch's; this table's maximum is the step's.")
    write_results(a.out, command, table, intro)
    print(Path(a.out).with_suffix(".md").read_text())
    return rc


if __name__ == "__main__":
    sys.exit(main())
