"""Memory of the integrate step at scale (issue 19): the stored counts are filled without a float64 copy of the
whole matrix, the SNN graph never holds the unpruned k^2-per-cell product of all cells, and alignment on a
``max_cells`` subsample does not grow with the cells."""

from __future__ import annotations

import tracemalloc

import numpy as np

from scfactor.core import metrics
from scfactor.integrate import snn
from scfactor.integrate.cli import SIMULATE
from scfactor.integrate.pipeline import BackedSource


def _peak(fn, *args, **kw):
    tracemalloc.start()
    try:
        out = fn(*args, **kw)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_online_matrix_is_filled_without_a_float64_copy(tmp_path):
    from scfactor.integrate.simulate import write_simulation
    path = tmp_path / "sim.h5ad"
    write_simulation(SIMULATE.defaults(n_cells=(1200, 800), n_genes=150, k_shared=4, k_specific=0, seed=3), path)
    src = BackedSource(path, (), "X", "all", "label")
    try:
        src.fit_scale(40)
        src.read(0, 0, 40)  # one-time allocations (file caches) out of the trace
        _, one_read = _peak(src.read, 1, 0, 40)  # the transient memory of reading one chunk
        (x, parts), peak = _peak(src.matrix, 40)
        # the same rows as reading each batch whole (float64), stored as float32
        for bi, n in enumerate(src.n_cells):
            whole = src.read(bi, 0, n)
            assert (parts[bi] != whole.astype(np.float32)).nnz == 0
            assert np.shares_memory(parts[bi].data, x.data)
    finally:
        src.close()
    float64_copy = x.nnz * (8 + 4)  # what stacking the float64 rows held, before the float32 copy
    assert x.dtype == np.float32 and peak - one_read < 0.85 * float64_copy, (peak, one_read, float64_copy)


def test_snn_graph_in_blocks_equals_whole_and_holds_less():
    x = np.random.default_rng(0).normal(size=(4000, 4))
    whole, peak_whole = _peak(snn.snn_graph, x, 20, 1 / 15, block=10**9)
    blocks, peak_blocks = _peak(snn.snn_graph, x, 20, 1 / 15, block=400)
    assert (whole != blocks).nnz == 0 and np.array_equal(whole.indices, blocks.indices)
    assert peak_blocks < 0.5 * peak_whole


def test_alignment_subsample_memory_does_not_grow():
    rng = np.random.default_rng(1)
    peaks, scores = [], []
    for n in (4000, 16000):
        emb, batch = rng.normal(size=(n, 5)), np.repeat(["a", "b"], n // 2)
        s, p = _peak(metrics.alignment_score, emb, batch, max_cells=2000)
        peaks.append(p)
        scores.append(s)
    assert peaks[1] < 1.5 * peaks[0]
    assert all(0.8 < s < 1.2 for s in scores)  # random embedding: well mixed
