#!/usr/bin/env python
"""NB mixture: CPU time of one E step (`component_loglik`) of the working tree against another commit's.

    python benchmarks/nbmix/e_step.py --input /tmp/scale1m/n1000000/pre.h5ad --cells 100000 --code-commit 756e61b

The first ``--cells`` cells of the input's count layer (read from the .h5ad's CSR arrays, ``--layer``) and
parameters from the moment estimates of a seeded random hard labelling into ``--k`` components; each side runs
in its own process with one thread, the sides alternating, ``--repeats`` times. Reported: CPU and wall seconds
of the E step (the median over the repeats, and every run), nonzeros per CPU second, and the largest difference
between the two sides' ``[cells, k]`` log-likelihood matrices (absolute, and relative to the entry's size).
Writes ``<out>.tsv`` and ``<out>.md``, the command on their first line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import add_code_side_options, alternate_code_sides  # noqa: E402
from results_file import command_line, write_results  # noqa: E402


def read_rows(path: str, layer: str, cells: int):
    """The first ``cells`` rows of the .h5ad's CSR matrix ``layer`` (``X`` or a layer name)."""
    import h5py
    import scipy.sparse as sp
    with h5py.File(path, "r") as f:
        g = f["X"] if layer == "X" else f["layers"][layer]
        ptr = g["indptr"][:cells + 1]
        return sp.csr_matrix((g["data"][:ptr[-1]], g["indices"][:ptr[-1]], ptr), shape=(len(ptr) - 1,
                                                                                      g.attrs["shape"][1]))


def child(a) -> int:
    """Time one E step with the package under ``a.code`` and save its result to ``a.result``."""
    sys.path.insert(0, a.code)
    import torch
    torch.set_num_threads(1)
    from scfactor.nbmix import model
    x = read_rows(a.input, a.layer, a.cells)
    data = model.CountData(x)
    labels = np.random.default_rng(0).integers(0, a.k, x.shape[0])
    w = torch.zeros(x.shape[0], a.k, dtype=torch.float64)
    w[torch.arange(x.shape[0]), torch.as_tensor(labels)] = 1.0
    lm, lr = model.moment_init(data, w)
    t0, c0 = time.perf_counter(), time.process_time()
    ll = model.component_loglik(data, lm, lr)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    np.save(a.result, ll.numpy())
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "nnz": int(x.nnz)}))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, help=".h5ad with a CSR count matrix")
    ap.add_argument("--layer", default="counts")
    ap.add_argument("--cells", type=int, default=100000)
    ap.add_argument("--k", type=int, default=10)
    add_code_side_options(ap, "nbmix_e_step")
    a = ap.parse_args(argv)
    if a.child:
        return child(a)
    command = command_line(__file__)
    runs, before, after = alternate_code_sides(
        __file__, ["--input", a.input, "--layer", a.layer, "--cells", str(a.cells), "--k", str(a.k),
                   "--code-commit", a.code_commit], a.code_commit, a.repeats, "e_step")
    diff = np.abs(after - before)
    table = pd.DataFrame(runs).groupby("side", sort=False).agg(
        cpu_s=("cpu_s", "median"), wall_s=("wall_s", "median"), nnz=("nnz", "first"),
        cpu_runs=("cpu_s", lambda v: " ".join(f"{t:.2f}" for t in v))).reset_index()
    table["nnz_per_cpu_s"] = table["nnz"] / table["cpu_s"]
    intro = (f"# NB mixture: one E step, {a.cells} cells x k={a.k}\n\nEach side in its own process, one thread, "
             f"alternating, {a.repeats} repeats (median; every run in `cpu_runs`). CPU time ratio (before / after): "
             f"{table.cpu_s.iloc[0] / table.cpu_s.iloc[1]:.2f}x "
             f"(wall {table.wall_s.iloc[0] / table.wall_s.iloc[1]:.2f}x). "
             f"Largest difference of the log-likelihood matrices: {diff.max():.3g} absolute, "
             f"{(diff / np.maximum(np.abs(before), 1)).max():.3g} relative.")
    write_results(a.out, command, table, intro)
    print(intro)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
