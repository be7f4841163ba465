"""`scfactor.core.graphs`: igraph graphs through the edge-list file, and scanpy's igraph Leiden on them."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scfactor.core.graphs import igraph_graph, igraph_seeded, scanpy_leiden


def test_igraph_graph_keeps_the_edge_order_and_trailing_isolated_vertices():
    import igraph as ig

    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 50, 301).astype(np.int32), rng.integers(0, 50, 301).astype(np.int32)
    g = igraph_graph(60, rows, cols, chunk=64)
    ref = ig.Graph(n=60, edges=np.column_stack([rows, cols]), directed=False)
    assert g.vcount() == 60 and not g.is_directed() and g.get_edgelist() == ref.get_edgelist()
    assert igraph_graph(5, np.zeros(0, np.int32), np.zeros(0, np.int32)).vcount() == 5


def test_igraph_graph_without_a_writable_temporary_folder_fails_in_one_line(tmp_path, monkeypatch):
    import tempfile

    from scfactor.core.memory import ResourceError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    with pytest.raises(ResourceError, match="temporary folder .*no-such-folder.*TMPDIR") as err:
        igraph_graph(3, np.array([0, 1], np.int32), np.array([1, 2], np.int32))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("seed", [0, 7])
def test_scanpy_leiden_gives_sc_tl_leiden_s_partition(seed):
    """The same labels as ``sc.tl.leiden(flavor="igraph")`` on the same k-NN connectivities, at a resolution
    with many clusters (so the random order matters), an explicitly stored zero and an isolated last cell."""
    import anndata as ad
    import scanpy as sc

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 8)) + 3.0 * rng.integers(0, 4, size=(600, 1))
    a = ad.AnnData(X=x.astype(np.float32))
    sc.pp.neighbors(a, n_neighbors=10, use_rep="X", random_state=seed)
    conn = sp.csr_matrix(a.obsp["connectivities"])
    conn.data[5] = 0.0  # stored, but no edge for scanpy either
    conn = sp.csr_matrix((conn.data, conn.indices, np.append(conn.indptr, conn.nnz)), shape=(601, 601))
    b = ad.AnnData(X=np.zeros((601, 1), np.float32))
    sc.tl.leiden(b, adjacency=conn, resolution=2.0, random_state=seed, flavor="igraph", n_iterations=2, directed=False)
    ours = scanpy_leiden(conn, 2.0, seed, n_iterations=2)
    assert len(np.unique(ours)) > 4
    assert np.array_equal(ours, b.obs["leiden"].astype(int).to_numpy())


def test_leiden_on_scores_partition_is_that_of_the_python_built_graph():
    """The NB mixture's Leiden start builds its graph by `igraph_graph`; the partition equals the one on the
    graph built from Python pairs (the route before)."""
    import random

    import igraph as ig
    from sklearn.neighbors import kneighbors_graph

    from scfactor.core.clustering import leiden_on_scores

    x = np.random.default_rng(4).normal(size=(500, 5))
    adj = kneighbors_graph(x, n_neighbors=15, mode="connectivity")
    adj = sp.triu(adj.maximum(adj.T), k=1).tocoo()
    g = ig.Graph(n=500, edges=np.column_stack([adj.row, adj.col]).tolist())
    ig.set_random_number_generator(random.Random(3))
    try:
        ref = g.community_leiden(objective_function="modularity", resolution=1.5, n_iterations=2).membership
    finally:
        ig.set_random_number_generator(random)
    assert np.array_equal(leiden_on_scores(x, n_neighbors=15, resolution=1.5, seed=3), ref)


def test_igraph_seeded_repeats_a_start_and_restores_the_default_generator():
    """The same seed gives the same partition on a graph where the random order matters; afterwards, and after an
    error inside the block, igraph draws from Python's ``random`` module again."""
    import random

    import igraph as ig
    g = ig.Graph.Erdos_Renyi(n=400, m=1600)

    def start(seed):
        with igraph_seeded(seed):
            return g.community_leiden(objective_function="modularity", resolution=1.0, n_iterations=2).membership
    assert start(5) == start(5)
    with pytest.raises(RuntimeError), igraph_seeded(1):
        raise RuntimeError("inside")
    random.seed(7)
    first = g.community_leiden(objective_function="modularity", n_iterations=2).membership
    random.seed(7)
    assert g.community_leiden(objective_function="modularity", n_iterations=2).membership == first
