"""Helpers shared by the benchmark runners (numpy / scipy only: importable from both venvs)."""
import os
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import rss  # noqa: E402


def load_scaled(path):
    """The two scaled CSR matrices and gene names written by prep_kang.py."""
    z = np.load(path, allow_pickle=False)
    mats = [sp.csr_matrix((z[f"x{i}_data"], z[f"x{i}_indices"], z[f"x{i}_indptr"]),
                          shape=tuple(z[f"x{i}_shape"])) for i in range(2)]
    return mats, z["genes"]


def save_factors(path, w, v, h, seconds, cpu_seconds, rss_before, extra=None):
    """W (k x genes), V_i, H_i (cells x k), the fit's wall and CPU seconds and the memory of one run."""
    out = {"W": np.asarray(w), "seconds": seconds, "cpu_seconds": cpu_seconds, "rss_before_mb": rss_before,
           "peak_rss_mb": rss.peak_mib()}
    for i, (vi, hi) in enumerate(zip(v, h)):
        out[f"V{i}"], out[f"H{i}"] = np.asarray(vi), np.asarray(hi)
    out.update(extra or {})
    np.savez(path, **out)


def threads(n):
    """Limit every BLAS / OpenMP thread pool of this process to ``n`` threads (before numpy loads)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
