"""Shared command-line plumbing: the parser every step's CLI starts from, logging, threads, `run`.

Each analysis's ``cli.py`` defines one ``<step>(argv=None) -> int`` per script; ``workflow/scripts/<step>.py``
calls it through `run`, which turns a user-fixable `ScfactorError` (and a bad option) into one readable
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .memory import check_memory
from .errors import ScfactorError
from .log import LOG, setup_logging


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``error: argument --k: ...``), exit code 2."""

    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts given by hand (``--threads``, a layer number): an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is out of range (must be >= 1)")
    return value


def parser(description: str, step=None) -> argparse.ArgumentParser:
    """An ArgumentParser with ``--threads`` and ``-v``, plus the schema-derived options of ``step``.

    ``description``: the first line of the step function's docstring is used when given a function.
    """
    if callable(description):
        description = (description.__doc__ or "").strip().splitlines()[0]
    p = _OneLineParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads to use (the rule's threads)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    if step is not None:
        step.add_arguments(p)
    return p


def start(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse ``argv``, set up logging and thread limits; the first lines of every step function."""
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    set_threads(args.threads)
    return args


def set_threads(n: int) -> None:
    """Limit BLAS / OpenMP / torch threads to ``n`` (the rule's ``threads``)."""
    n = max(1, int(n))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    numba_pool = sys.modules.get("numba.np.ufunc.parallel")
    if numba_pool is not None and numba_pool._is_initialized:
        # numba's pool is sized once per process (a second step run in the same process, as the tests
        # do): changing NUMBA_NUM_THREADS now makes numba raise, so only narrow the pool's use
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    else:
        os.environ["NUMBA_NUM_THREADS"] = str(n)
        if numba_pool is not None:
            # numba imported already (a step module's import): its config and the pool size it read at
            # import must follow, else the pool starts at the old size and the next compile raises
            sys.modules["numba"].core.config.reload_config()
            numba_pool.NUM_THREADS = n
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


#: the last log line of every step that succeeds (`run`); `benchmarks/run_times.py` reads it from the job logs
USAGE_LINE = "done: {wall_s:.1f} s wall, {cpu_s:.1f} s CPU, peak memory {peak_mib:.0f} MiB"


def usage(t0: float) -> dict:
    """Wall seconds since ``t0``, CPU seconds (user + system, of this process and the children it waited for,
    such as joblib workers) and peak resident memory (MiB, of this process or its largest child)."""
    import resource
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"wall_s": time.time() - t0, "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
            "peak_mib": max(me.ru_maxrss, kids.ru_maxrss) / 1024}


def run(main, argv=None) -> int:
    """Call ``main(argv)``; on `ScfactorError` print ``error: <message>`` and return 2.

    Before ``main`` runs, the memory guard (`scfactor.cluster.check_memory`) compares the memory a
    SLURM job was granted with ``SCFACTOR_MIN_MEM_MB`` and fails fast when it is too little, so that
    Snakemake retries the job with the next attempt's (larger) ``mem_mb``. A step that succeeds logs its
    `usage` last (`USAGE_LINE`): what to ask a cluster for (``mem_mb``, ``runtime``) when the data grow.
    """
    t0 = time.time()
    try:
        check_memory(getattr(main, "__name__", "scfactor"))
        code = main(argv)
    except ScfactorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    code = int(code or 0)
    if code == 0:
        LOG.info(USAGE_LINE.format(**usage(t0)))
    return code
