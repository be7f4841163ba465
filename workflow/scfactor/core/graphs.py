"""igraph graphs from arrays of edges, and scanpy's igraph Leiden on them, without a Python object per edge.

python-igraph builds a graph from an array of pairs element by element through Python objects (and scanpy's
``sc.tl.leiden`` first makes a list of one tuple per stored entry of the adjacency matrix), which costs a few
GiB at a million cells' k-NN or SNN graph. `igraph_graph` builds the same graph through igraph's C edge-list
reader; `scanpy_leiden` runs what ``sc.tl.leiden(flavor="igraph")`` runs, on a graph built that way.
`igraph_seeded` seeds igraph's random numbers for a block (the project's own Leiden starts).
"""

from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp


def igraph_graph(n: int, rows: np.ndarray, cols: np.ndarray, chunk: int = 1 << 22):
    """Undirected igraph ``Graph`` with ``n`` vertices and edge ``i`` = (``rows[i]``, ``cols[i]``), in this order.

    The pairs go through a temporary text file (``TMPDIR``, about 14 bytes per edge, removed on return) read by
    igraph's C edge-list reader: python-igraph converts an array of pairs element by element through Python
    objects, which held 5.1 GiB beyond the graph for 34 M edges (a million cells' SNN graph) and took 57.7 CPU
    s; the file route 0.76 GiB and 45.1 s (`benchmarks/results/integrate_igraph_build.md`). A temporary folder
    that cannot be written raises `ResourceError` (one line: the folder, the size needed, the reason).
    """
    import os
    import tempfile

    import igraph as ig

    from .memory import ResourceError

    try:
        with tempfile.TemporaryDirectory(prefix="scfactor-edges-") as tmp:
            path = os.path.join(tmp, "edges.txt")
            with open(path, "wb") as fh:
                for start in range(0, len(rows), chunk):
                    pairs = np.column_stack([rows[start:start + chunk], cols[start:start + chunk]])
                    pairs.tofile(fh, sep=" ")
                    fh.write(b"\n")
            g = ig.Graph.Read_Edgelist(path, directed=False)
    except OSError as exc:
        raise ResourceError(f"cannot write the clustering graph's {len(rows)} edges (about {14 * len(rows) >> 20} "
                            f"MiB) to the temporary folder {tempfile.gettempdir()}: {exc.strerror or exc}; set "
                            "TMPDIR to a writable folder with room") from exc
    if g.vcount() < n:  # the reader numbers vertices up to the largest id it saw
        g.add_vertices(n - g.vcount())
    return g


@contextlib.contextmanager
def igraph_seeded(seed: int):
    """igraph draws its random numbers from ``random.Random(seed)`` inside the block, and from Python's ``random``
    module (igraph's default) again afterwards, on error too."""
    import random

    import igraph as ig
    ig.set_random_number_generator(random.Random(seed))
    try:
        yield
    finally:
        ig.set_random_number_generator(random)


def scanpy_leiden(adjacency, resolution: float, seed: int, n_iterations: int = 2) -> np.ndarray:
    """The labels of ``sc.tl.leiden(adata, resolution=..., random_state=seed, flavor="igraph",
    n_iterations=..., directed=False)`` on the weighted ``adjacency`` (e.g. ``obsp['connectivities']``), as an
    int array.

    The same graph (every stored non-zero an edge, in row-major order, its value the weight), the same call
    (igraph's ``community_leiden``, modularity) and scanpy's own seeding of igraph's random numbers, so the
    partition is the same; built by `igraph_graph`, not from a list of Python tuples, and its weights passed
    as one list, not stored as an edge attribute.
    """
    from scanpy._utils.random import set_igraph_random_state

    coo = sp.coo_matrix(adjacency)
    keep = coo.data != 0
    rows, cols, weights = coo.row[keep], coo.col[keep], coo.data[keep]
    del coo, keep
    g = igraph_graph(adjacency.shape[0], rows, cols)
    del rows, cols
    weights = weights.tolist()
    with set_igraph_random_state(seed):
        part = g.community_leiden(weights=weights, resolution=resolution, objective_function="modularity",
                                  n_iterations=n_iterations)
    return np.asarray(part.membership, dtype=np.int64)
