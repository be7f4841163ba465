#!/usr/bin/env python
"""Online iNMF on a backed .h5ad (counts in X or a layer), timing and peak memory; no downstream steps.
Usage: run_online.py IN.h5ad OUT.npz K LAMBDA EPOCHS MINIBATCH SEED [LAYER] [MODE]
MODE online (default) or batch (all scaled cells in memory, fit_inmf with the default HALS solver,
30 iterations) for comparing objectives on the same file."""
import sys
import time
from pathlib import Path

from common import threads

threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import peak_rss_mb, rss_mb  # noqa: E402
from scfactor.core import cli  # noqa: E402
from scfactor.integrate import model  # noqa: E402
from scfactor.integrate.cli import INTEGRATE  # noqa: E402
from scfactor.integrate.pipeline import BackedSource  # noqa: E402


def main():
    inp, out, k, lam, epochs, mb, seed = sys.argv[1:8]
    layer = sys.argv[8] if len(sys.argv) > 8 else "X"
    mode = sys.argv[9] if len(sys.argv) > 9 else "online"
    torch.set_num_threads(1)
    cli.setup_logging()
    before = rss_mb()
    t0 = time.perf_counter()
    src = BackedSource(inp, (), layer, "all", "label")
    src.fit_scale(int(mb))
    t_scale = time.perf_counter() - t0
    if mode == "batch":
        import scipy.sparse as sp
        xs = [sp.vstack([src.read(i, s0, min(s0 + int(mb), n)) for s0 in range(0, n, int(mb))]).tocsr()
              for i, n in enumerate(src.n_cells)]
        d = INTEGRATE.defaults()
        r = model.fit_inmf(xs, k=int(k), lam=float(lam), max_iters=30, thresh=0.0, nrep=d.nrep, seed=int(seed),
                           solver=d.solver, hals_sweeps=d.hals_sweeps)
        secs = time.perf_counter() - t0
        np.savez(out, seconds=secs, scale_seconds=t_scale, objective=r.objective, cells=sum(src.n_cells),
                 genes=len(src.genes), peak_rss_mb=peak_rss_mb(), rss_before_mb=before,
                 epoch_objectives=np.asarray(r.trace))
        print(f"batch iNMF: {sum(src.n_cells)} cells, {secs:.1f} s, objective {r.objective:.6g}")
        return
    res = model.fit_online_inmf(lambda e: src.stream(int(mb), int(seed) + 1 + e), src.n_cells, len(src.genes),
                                k=int(k), lam=float(lam), epochs=int(epochs), seed=int(seed),
                                h_stream=lambda: src.stream(int(mb), int(seed)), log=cli.LOG.info)
    secs = time.perf_counter() - t0
    np.savez(out, seconds=secs, scale_seconds=t_scale, objective=res.objective, cells=sum(src.n_cells),
             genes=len(src.genes), peak_rss_mb=peak_rss_mb(), rss_before_mb=before,
             epoch_objectives=np.asarray(res.epoch_objectives))
    print(f"online iNMF: {sum(src.n_cells)} cells, {secs:.1f} s, peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
