"""Densify's output written block by block (`scfactor.densify.stream`, issue 19): counts and dense layer, the same
file as the in-memory write, and traced memory bounded by a block, not by the cells. (Its input read:
`tests/preprocess/test_contract.py`; the training matrix on disk: `tests/densify/test_spill.py`.)"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from densify.data import cpu_strategy, planted_counts
from scfactor.densify import stream
from scfactor.densify.cli import DENSIFY


@pytest.fixture(scope="module")
def tf_cpu():
    return cpu_strategy()


def _model(x, tf_cpu):
    from scfactor.densify.train import build_model, size_factors
    opts = DENSIFY.defaults(embedding_dim=4, layers=(8, 4))
    sf = size_factors(x)
    return build_model("neumf", x, sf, opts, tf_cpu), np.log(sf).astype(np.float32)


def _meta(x, matrices=True):
    import anndata as ad
    n, m = x.shape
    a = ad.AnnData(obs=pd.DataFrame({"batch": ["b1"] * n}, index=[f"c{i}" for i in range(n)]),
                   var=pd.DataFrame(index=[f"g{j}" for j in range(m)]))
    if matrices:
        a.X = sp.csr_matrix(x, dtype=np.float32)
        a.layers["counts"] = sp.csr_matrix(x, dtype=np.int32)
    return a


def _count_blocks(x, rows: int):
    x = sp.csr_matrix(x)
    return (x[a:a + rows] for a in range(0, x.shape[0], rows))


def test_streamed_output_equals_the_in_memory_write(tmp_path, tf_cpu):
    import anndata as ad

    from scfactor.core.io import write_h5ad
    from scfactor.densify.train import predict_blocks, predict_dense
    x, _ = planted_counts(53, 20)
    model, offset = _model(x, tf_cpu)
    uns = {"neumf": {"params": {"seed": 0}, "heldout_rows": np.arange(3, dtype=np.int32)}}
    meta = _meta(x, matrices=False)
    stream.write_densified(tmp_path / "s.h5ad", meta, predict_blocks(model, offset, *x.shape, 100), lambda: uns,
                           _count_blocks(x, 7), integer_counts=True)
    mem = _meta(x)
    mem.layers["neumf"] = predict_dense(model, offset, *x.shape, 100)  # same blocks: bit-identical values
    mem.uns.update(uns)
    write_h5ad(mem, tmp_path / "m.h5ad")
    a, b = ad.read_h5ad(tmp_path / "s.h5ad"), ad.read_h5ad(tmp_path / "m.h5ad")
    assert isinstance(a.layers["neumf"], np.ndarray) and a.layers["neumf"].dtype == np.float32
    np.testing.assert_array_equal(a.layers["neumf"], b.layers["neumf"])
    for key in ("counts",):
        assert (sp.csr_matrix(a.layers[key]) != sp.csr_matrix(b.layers[key])).nnz == 0
    assert (sp.csr_matrix(a.X) != sp.csr_matrix(b.X)).nnz == 0
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    np.testing.assert_array_equal(a.uns["neumf"]["heldout_rows"], b.uns["neumf"]["heldout_rows"])
    assert a.uns["neumf"]["params"] == b.uns["neumf"]["params"]


def test_streamed_write_memory_does_not_grow_with_the_cells(tmp_path, tf_cpu):
    """Traced (numpy / Python) peak while writing 20,000 cells x 100 genes (8 MB dense) in blocks of 50 cells
    and the counts (20,000 stored, 0.2 MB as CSR) in blocks of 1,000 cells: below 2 MB (one block and the
    per-cell names), while the in-memory prediction alone takes the 8 MB."""
    from scfactor.densify.train import predict_blocks, predict_dense
    n, m = 20_000, 100
    rng = np.random.default_rng(0)
    x = sp.random(n, m, density=0.01, format="csr", random_state=rng, data_rvs=lambda k: rng.integers(1, 5, k))
    model, offset = _model(x, tf_cpu)
    meta = _meta(x, matrices=False)
    dense_bytes = n * m * 4
    list(predict_blocks(model, offset, 100, m, 5000))  # trace the prediction function outside the measurement

    tracemalloc.start()
    stream.write_densified(tmp_path / "s.h5ad", meta, predict_blocks(model, offset, n, m, 5000), dict,
                           _count_blocks(x, 1000), integer_counts=True)
    _, streamed = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    tracemalloc.start()
    predict_dense(model, offset, n, m, 5000)
    _, in_memory = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert in_memory >= dense_bytes
    assert streamed < 2_000_000 == dense_bytes / 4
