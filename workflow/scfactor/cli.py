"""Shared command-line plumbing for the scripts in ``workflow/scripts``.

Every script defines ``main(argv=None) -> int`` and ends with ``raise SystemExit(run(main))``.
`run` turns a user-fixable `ScfactorError` into one readable line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from .cluster import check_memory
from .errors import ScfactorError

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


def parser(description: str) -> argparse.ArgumentParser:
    """An ArgumentParser with the options every script shares (``--seed``, ``--threads``, ``-v``)."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--threads", type=int, default=1, help="CPU threads to use")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def set_threads(n: int) -> None:
    """Limit BLAS / OpenMP / torch threads to ``n`` (the rule's ``threads``)."""
    n = max(1, int(n))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def run(main, argv=None) -> int:
    """Call ``main(argv)``; on `ScfactorError` print ``error: <message>`` and return 2.

    Before ``main`` runs, the memory guard (`scfactor.cluster.check_memory`) compares the memory a
    SLURM job was granted with ``SCFACTOR_MIN_MEM_MB`` and fails fast when it is too little, so that
    Snakemake retries the job with the next attempt's (larger) ``mem_mb``.
    """
    t0 = time.time()
    try:
        check_memory(os.path.splitext(os.path.basename(sys.argv[0] or "scfactor"))[0])
        code = main(argv)
    except ScfactorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    LOG.debug("finished in %.1f s", time.time() - t0)
    return int(code or 0)
