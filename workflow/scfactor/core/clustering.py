"""The standard scanpy clustering pipeline (normalise, log1p, PCA, k-NN graph, Leiden, UMAP).

Used as the baseline of the NB mixture (the model-based clustering notebook) and to initialise it from Leiden
labels.
"""

from __future__ import annotations

import contextlib
import sys
import time

import numpy as np
import scipy.sparse as sp

from .csr_stack import row_blocks, row_sums
from .graphs import igraph_graph, igraph_seeded, scanpy_leiden
from .log import LOG
from .memory import trim_heap


@contextlib.contextmanager
def _numba_disk_cache():
    """Compile every numba function defined meanwhile with ``cache=True`` (kept on disk, reused by later
    processes).

    pynndescent and umap-learn mark most of their numba functions ``cache=False``, and pynndescent compiles
    dozens of distance functions when imported: each process that builds a k-NN graph or a UMAP spent 10-25
    CPU seconds compiling the same code again (most of a small job's time). Cached, a later process loads
    them; the compiled code, and so every result, is the same. The cache lives next to the packages' sources
    (numba's default) or under ``NUMBA_CACHE_DIR``. A few functions cannot be cached (pynndescent's
    ``nn_descent``, which refers to other compiled functions as globals): they compile as before, and
    numba's warning saying so is silenced.
    """
    import functools
    import warnings

    import numba
    from numba.core.errors import NumbaWarning

    warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=NumbaWarning)

    def cached(decorator):
        @functools.wraps(decorator)
        def wrapper(*args, **kwargs):
            return decorator(*args, **{**kwargs, "cache": True})
        return wrapper

    njit, jit = numba.njit, numba.jit
    numba.njit, numba.jit = cached(njit), cached(jit)
    try:
        yield
    finally:
        numba.njit, numba.jit = njit, jit


def import_umap() -> None:
    """Import umap-learn (and pynndescent) with their numba code cached on disk (`_numba_disk_cache`) and
    TensorFlow hidden for the duration of the import.

    umap-learn imports TensorFlow (for ParametricUMAP) when it is installed: that costs tens of seconds
    and TensorFlow's thread pools then slow every later PyTorch call in the same process. Nothing here
    needs it; TensorFlow stays importable afterwards for other code.
    """
    if "umap" in sys.modules:
        return
    hide = "tensorflow" not in sys.modules
    if hide:
        sys.modules["tensorflow"] = None
    try:
        with _numba_disk_cache():
            import umap  # noqa: F401
    finally:
        if hide:
            del sys.modules["tensorflow"]


def approximate_knn(x, k: int, seed: int) -> np.ndarray:
    """Indices of the ``k`` approximate nearest neighbours of each row of ``x`` (Euclidean, itself included,
    usually first), by pynndescent (the neighbour search scanpy uses), seeded: deterministic, one thread.

    For large data, where an exact search costs O(n^2); memory is O(n k). The search's freed memory is handed back
    to the system afterwards (`scfactor.core.memory.trim_heap`).
    """
    import_umap()  # pynndescent's numba code cached on disk
    from pynndescent import NNDescent

    import warnings

    from numba.core.errors import NumbaWarning

    x = np.ascontiguousarray(x, dtype=np.float32)
    k = min(k, x.shape[0])
    with _keep_torch_threads(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=NumbaWarning)
        index = NNDescent(x, n_neighbors=k, metric="euclidean", random_state=seed, n_jobs=1,
                          low_memory=True, compressed=True)
        nn, _ = index.neighbor_graph
    del index
    trim_heap()  # pynndescent leaves its freed memory in the heap
    return np.asarray(nn, dtype=np.int64)


@contextlib.contextmanager
def _keep_torch_threads():
    """Restore PyTorch's thread count afterwards: numba / TensorFlow (pulled in by the k-NN graph and UMAP)
    reset the OpenMP thread count, and later PyTorch calls in the same process then slow down a lot."""
    torch = sys.modules.get("torch")
    n = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if torch is not None:
            torch.set_num_threads(n)


def _scores_adata(scores):
    import anndata as ad
    return ad.AnnData(X=np.asarray(scores, dtype=np.float32))


def leiden_on_scores(scores, n_neighbors: int = 15, resolution: float = 1.0, seed: int = 0) -> np.ndarray:
    """Leiden labels (int array) of the symmetrised exact k-NN graph of ``scores`` (e.g. PCA coordinates).

    A light version of the scanpy pipeline (sklearn k-NN + igraph Leiden, modularity with ``resolution``)
    used to initialise the NB mixture; it avoids numba/UMAP start-up costs. The baseline rule uses scanpy.
    """
    from sklearn.neighbors import kneighbors_graph
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    adj = kneighbors_graph(scores, n_neighbors=max(1, min(n_neighbors, n - 1)), mode="connectivity")
    adj = sp.triu(adj.maximum(adj.T), k=1).tocoo()
    graph = igraph_graph(n, adj.row, adj.col)
    with igraph_seeded(seed):
        part = graph.community_leiden(objective_function="modularity", resolution=resolution, n_iterations=2)
    return np.asarray(part.membership, dtype=np.int64)


def scanpy_pipeline(counts, n_pcs: int = 50, n_neighbors: int = 15, resolution: float = 1.0, seed: int = 0,
                    target_sum: float = 1e4, umap: bool = True, umap_max_cells: int | None = None) -> dict:
    """Run normalise_total -> log1p (`normalise_log1p`: scanpy's values, computed in place a block of rows at a
    time) -> PCA -> neighbors -> Leiden (-> UMAP) on raw ``counts`` (left unchanged), logging each stage.

    Returns ``{'leiden': labels, 'X_pca': [n, n_pcs], 'X_umap': [n, 2] or None, 'umap_sample': rows or None}``.
    With more than ``umap_max_cells`` cells the UMAP (display only) is that of a seeded random subsample of
    that many cells (`umap_subsample`; its rows in ``umap_sample``, NaN coordinates elsewhere).
    The log-normalised matrix (`float_values`) is released once the PCA is computed: the graph, Leiden and
    UMAP stages hold only the principal components beside ``counts``.
    """
    import anndata as ad
    import_umap()
    import scanpy as sc
    with _keep_torch_threads():
        return _pipeline(ad.AnnData(X=float_values(counts)), sc, n_pcs, n_neighbors, resolution, seed, target_sum,
                         umap, umap_max_cells)


def float_values(counts) -> sp.csr_matrix:
    """``counts`` as a float32 CSR matrix that scanpy may normalise in place without changing ``counts``.

    A canonical CSR ``counts`` (sorted column indices, no duplicates: nothing sorts or merges them in place) gets
    a new value array and shares its index arrays, which the normalisation, log1p and PCA only read: at a million
    cells that is half the memory of a full copy. Any other input is copied whole (float32 CSR counts included:
    before, scanpy normalised those in place, in the caller's matrix)."""
    if sp.issparse(counts) and counts.format == "csr" and counts.has_canonical_format:
        return sp.csr_matrix((counts.data.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape,
                             copy=False)
    return sp.csr_matrix(counts, dtype=np.float32, copy=True)  # without copy, float32 CSR counts would be shared


def normalise_log1p(x: sp.csr_matrix, target_sum: float, block_entries: int = 1 << 22) -> None:
    """``sc.pp.normalize_total(target_sum=target_sum)`` then ``sc.pp.log1p`` of the float32 CSR matrix ``x``, in
    place, a block of rows at a time (``block_entries`` stored values).

    The same float32 values as scanpy's for counts (whole numbers: each row's float64 sum is exact in any order,
    `csr_stack.row_sums`), then the same float32 division and log1p; other values agree to float32 rounding.
    scanpy divides by a per-value repeat of the row factors into a new array, two temporaries of the stored values'
    size (3.3 GB at a million cells): here they are one block's. Rows summing to 0 are divided by 1, as scanpy does.
    """
    data, indptr = x.data, x.indptr
    sums = row_sums(x, dtype=np.float64, entries=block_entries)
    scale = sums.astype(data.dtype) / target_sum        # scanpy: float32 row sums / target_sum, in float32
    scale += scale == 0
    for r0, r1 in row_blocks(indptr, block_entries):
        block = data[indptr[r0]:indptr[r1]]
        np.divide(block, np.repeat(scale[r0:r1], np.diff(indptr[r0:r1 + 1])), out=block)
        np.log1p(block, out=block)


def _pipeline(a, sc, n_pcs, n_neighbors, resolution, seed, target_sum, umap, umap_max_cells):
    t0 = time.time()
    normalise_log1p(a.X, target_sum)
    n_comp = max(1, min(n_pcs, a.n_obs - 1, a.n_vars - 1))
    sc.pp.pca(a, n_comps=n_comp, random_state=seed)
    a.X = None  # the log-normalised values: not needed past the PCA
    trim_heap()
    LOG.info("scanpy pipeline: normalised, log1p, %d principal components (%.0f s)", n_comp, time.time() - t0)
    sc.pp.neighbors(a, n_neighbors=min(n_neighbors, a.n_obs - 1), use_rep="X_pca", random_state=seed)
    trim_heap()  # pynndescent leaves its freed memory in the heap
    LOG.info("scanpy pipeline: %d-neighbour graph (%.0f s)", min(n_neighbors, a.n_obs - 1), time.time() - t0)
    labels = scanpy_leiden(a.obsp["connectivities"], resolution, seed, n_iterations=2)
    LOG.info("scanpy pipeline: Leiden, %d clusters (%.0f s)", int(labels.max()) + 1, time.time() - t0)
    out = {"leiden": labels, "X_pca": a.obsm["X_pca"], "X_umap": None, "umap_sample": None}
    if umap and umap_max_cells is not None and a.n_obs > umap_max_cells:
        out["X_umap"], out["umap_sample"] = umap_subsample(a.obsm["X_pca"], n_neighbors, seed, umap_max_cells)
    elif umap:
        sc.tl.umap(a, random_state=seed)
        out["X_umap"] = a.obsm["X_umap"]
    if umap:
        LOG.info("scanpy pipeline: UMAP (%.0f s)", time.time() - t0)
    return out


def umap_subsample(rep, n_neighbors: int, seed: int, max_cells: int, **umap_kw):
    """``(coordinates [n, 2], rows)``: scanpy's exact k-NN graph and UMAP (``umap_kw``: `scanpy.tl.umap` options)
    of a seeded random subsample of ``max_cells`` rows of ``rep`` (sorted ``rows``); the other rows get NaN.

    For display only: the UMAP of a million cells costs more than the clustering it shows."""
    import anndata as ad
    import pandas as pd
    import_umap()
    import scanpy as sc
    n = rep.shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n, max_cells, replace=False))
    sub = ad.AnnData(obs=pd.DataFrame(index=rows.astype(str)), obsm={"rep": np.asarray(rep)[rows]})
    sc.pp.neighbors(sub, n_neighbors=n_neighbors, use_rep="rep", random_state=seed, transformer="sklearn")
    sc.tl.umap(sub, random_state=seed, **umap_kw)
    xy = np.full((n, 2), np.nan, dtype=sub.obsm["X_umap"].dtype)
    xy[rows] = sub.obsm["X_umap"]
    return xy, rows


def mark_umap_sample(adata, rows) -> None:
    """Record (and log) a UMAP subsample (`umap_subsample`'s ``rows``) in ``adata``: ``obs['umap_sample']`` (bool)
    and ``uns['umap_subsample']`` (``cells``, ``of``)."""
    LOG.info("UMAP on a random subsample of %d of %d cells (umap_max_cells)", len(rows), adata.n_obs)
    adata.obs["umap_sample"] = np.isin(np.arange(adata.n_obs), rows)
    adata.uns["umap_subsample"] = {"cells": int(len(rows)), "of": int(adata.n_obs)}
