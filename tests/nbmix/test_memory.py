"""NB-mixture EM at scale: chunked computations equal unchunked ones, and no step allocates per nonzero (times k)
or densifies the counts (issue 19: memory linear in the cells with a small constant)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.profiler import ProfilerActivity, profile

from scfactor.nbmix import model as nbmix
from scfactor.nbmix import starts

torch.set_num_threads(1)


def counts(n, p, density, seed=0):
    """Integer CSR counts (int32, as read from a preprocessed file), every cell with a count in gene 0."""
    rng = np.random.default_rng(seed)
    x = sp.random(n, p, density=density, random_state=seed, format="csr",
                  data_rvs=lambda m: rng.integers(1, 30, m)).astype(np.int32)
    return (x + sp.csr_matrix((np.ones(n, np.int32), (np.arange(n), np.zeros(n, int))), shape=(n, p))).tocsr()


@pytest.fixture(scope="module")
def small():
    x = counts(300, 40, 0.3)
    w = torch.tensor(np.random.default_rng(1).dirichlet(np.ones(3), size=300))
    rng = np.random.default_rng(2)
    lm = torch.tensor(rng.uniform(-7, -3, size=(3, 40)))
    lr = torch.tensor(rng.uniform(-1, 3, size=(3, 40)))
    return x, w, lm, lr


def test_chunked_equals_one_chunk(small):
    """Log-likelihoods, moments, weighted objective, gradient and Hessian of many chunks = those of one chunk."""
    x, w, lm, lr = small
    out = []
    for chunk in (150, 10**9):
        data = nbmix.CountData(x, chunk_elems=chunk)
        pairs = nbmix.Pairs(data, w)
        assert len(list(pairs.chunks())) == (1 if chunk > 10**6 else 300 * 3 // (chunk // 40))
        out.append([data.lgamma_x1, nbmix.component_loglik(data, lm, lr), *nbmix.moment_init(data, w),
                    nbmix._weighted_objective(pairs, lm, lr), *nbmix._grad_hess(pairs, lm, lr)])
    for a, b in zip(*out):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-9)


def test_moment_init_matches_dense_sums(small):
    """The chunked sums over the nonzeros give the weighted moment estimates of the dense matrix."""
    x, w, _, _ = small
    lm, lr = nbmix.moment_init(nbmix.CountData(x, chunk_elems=150), w)
    xd, wd = x.toarray().astype(float), w.numpy()
    s = xd.sum(1)
    ws, ws2 = wd.T @ s, wd.T @ s ** 2
    mu = (wd.T @ xd) / ws[:, None]
    excess = wd.T @ xd ** 2 - 2 * mu * (wd.T @ (xd * s[:, None])) + mu ** 2 * ws2[:, None] - mu * ws[:, None]
    phi = np.clip(excess / (mu ** 2 * ws2[:, None]), np.exp(-4), np.exp(4))
    np.testing.assert_allclose(lm.numpy(), np.log(mu), rtol=1e-12)
    np.testing.assert_allclose(lr.numpy(), -np.log(phi), rtol=1e-10, atol=1e-12)


def test_counts_are_not_copied(small):
    """`CountData` keeps the CSR's own index and value arrays (no per-nonzero copy); both dtypes give one fit."""
    x = small[0]
    data = nbmix.CountData(x)
    assert data._indices.data_ptr() == x.indices.ctypes.data
    assert data._data.data_ptr() == x.data.ctypes.data
    as_float = nbmix.CountData(x.astype(np.float64))
    np.testing.assert_array_equal(data.lgamma_x1.numpy(), as_float.lgamma_x1.numpy())


def test_no_allocation_per_nonzero():
    """The largest single torch allocation of the EM pieces (counts, moments, one M step, the E step) is of the
    order of cells x components, below one value per nonzero (the old M step gathered ``nnz x k`` values)."""
    n, p, k, chunk = 2000, 100, 4, 20_000
    x = counts(n, p, 0.3)
    w = torch.tensor(np.random.default_rng(0).dirichlet(np.ones(k), size=n))  # soft: every (cell, k) pair
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        data = nbmix.CountData(x, chunk_elems=chunk)
        lm, lr = nbmix.moment_init(data, w)
        lm, lr = nbmix.m_step(data, w, lm, lr, steps=1)
        nbmix.mixture_loglik(nbmix.component_loglik(data, lm, lr), torch.zeros(k))
    largest = max(e.cpu_memory_usage for e in prof.events())
    bound = 4 * n * k * 8
    assert x.nnz * 8 > bound  # a per-nonzero copy would fail
    assert 0 < largest <= bound


def test_log1p_pca_makes_one_copy(monkeypatch):
    """The PCA start scales and logs one float64 copy of the values in place (rows in chunks): its traced peak is
    about one value per nonzero (plus the PCA's own vectors), and the scores are those of the scaled, logged matrix."""
    x = counts(10_000, 100, 0.3)
    monkeypatch.setattr(starts, "ROW_CHUNK", 1000, raising=False)
    starts.log1p_pca(x[:50], 5, 0)  # imports and first-call allocations
    tracemalloc.start()
    try:
        got = starts.log1p_pca(x, 5, 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * x.nnz * 8  # one copy, the PCA's own n x (a few) vectors; was 3 copies
    y = sp.diags(1e4 / np.asarray(x.sum(1)).ravel()) @ x.astype(np.float64)
    y.data = np.log1p(y.data)
    from sklearn.decomposition import PCA
    ref = PCA(n_components=5, random_state=0, svd_solver="arpack").fit_transform(y)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-8)


def test_zero_count_rows_grouped_by_size_factor():
    """With many cells per distinct library size, the M step's zero-count terms run once per (component, distinct
    size factor) with the weights summed: the weighted objective, gradient and Hessian equal those per cell."""
    x = counts(600, 30, 0.3)
    x = sp.vstack([x] * 5).tocsr()  # every library size five times
    w = torch.tensor(np.random.default_rng(1).dirichlet(np.ones(3), size=x.shape[0]))
    rng = np.random.default_rng(2)
    lm = torch.tensor(rng.uniform(-7, -3, size=(3, 30)))
    lr = torch.tensor(rng.uniform(-1, 3, size=(3, 30)))
    data = nbmix.CountData(x)
    grouped = nbmix.Pairs(data, w)
    assert len(grouped.dense_kk) <= nbmix.SIZE_GROUPS_MAX_FRACTION * len(grouped.ii)
    per_cell = nbmix.Pairs(data, w)
    per_cell.dense_kk, per_cell.dense_s, per_cell.dense_w = per_cell.kk, data.s[per_cell.ii], per_cell.w
    for a, b in zip([nbmix._weighted_objective(grouped, lm, lr), *nbmix._grad_hess(grouped, lm, lr)],
                    [nbmix._weighted_objective(per_cell, lm, lr), *nbmix._grad_hess(per_cell, lm, lr)]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-9)
    # and a few cells with distinct sizes keep one row per pair (the small-data results stay bit-identical)
    small = nbmix.Pairs(nbmix.CountData(x[:50]), w[:50])
    assert torch.equal(small.dense_kk, small.kk)


def test_count_pairs_index_every_nonzero(small):
    """Each nonzero's (gene, count) pair, looked up chunk by chunk, is its own gene and count, the pairs are
    distinct, and the tables of the special functions per pair equal the functions per nonzero."""
    x, _, _, lr = small
    data = nbmix.CountData(x, chunk_elems=150)
    pair = torch.cat([data.nonzeros(nz, pairs=True)[2] for _, _, nz in data.chunks(1)]).numpy()
    assert len(pair) == x.nnz
    np.testing.assert_array_equal(data.pair_gene.numpy()[pair], x.indices)
    np.testing.assert_array_equal(data.pair_x.numpy()[pair], x.data)
    assert len(set(zip(data.pair_gene.tolist(), data.pair_x.tolist()))) == len(data.pair_x) < x.nnz
    table = data.pair_table(torch.lgamma, lr).numpy()[:, pair]
    direct = torch.lgamma(torch.tensor(x.data, dtype=torch.float64) + torch.exp(lr[:, x.indices])).numpy()
    np.testing.assert_array_equal(table, direct)


def test_count_pairs_exact_when_dtype_rounds_the_counts():
    """The pair lookup reads the stored counts, so a float32 fit of counts float32 cannot hold (above 2**24) still
    finds each count's own (gene, count) pair."""
    x = sp.csr_matrix(np.array([[2 ** 24 + 1, 3], [2 ** 24 + 3, 0], [5, 4]], dtype=np.int64))
    data = nbmix.CountData(x, dtype=torch.float32)
    _, _, pair = data.nonzeros(slice(0, x.nnz), pairs=True)
    pair = pair.numpy()
    np.testing.assert_array_equal(data.pair_gene.numpy()[pair], x.indices)
    assert len(set(pair.tolist())) == 5  # five distinct (gene, count) pairs, each its own slot
