"""The multilayer NMF notebook's Poisson-Gamma block simulation (``generate_data(N, K, M, mode='block')``).

Counts ``X ~ Poisson(theta @ beta.T)`` with ``theta`` (cells x K) and ``beta`` (genes x K) drawn
from Gamma distributions. In ``block`` mode cell block ``k`` (cells ``k*N/K .. (k+1)*N/K``) has a
raised loading on factor ``k`` and gene block ``k`` (genes ``k*M/K .. (k+1)*M/K``) a raised weight
in factor ``k``; everything else is Gamma background. ``dense`` mode draws both from Gamma(0.5, 0.1)
with no structure (the reference's other mode).

Parameterisation follows ``neuralNMF/util/sim.py`` (shape/rate; numpy's scale = 1/rate):
background theta ~ Gamma(alpha, rate 1), block theta ~ Gamma(alpha + eps, rate 1/eps);
background beta ~ Gamma(beta_shape, rate 1), block beta ~ Gamma(beta_shape + beta_eps, rate 1/beta_eps);
a fraction ``noise_prop`` of genes (the last ones) carries no block and is drawn from Gamma(0.7, 1).

Deviation from the reference (documented in docs/layers.md): its ``generate_H`` writes the block of
factor ``k`` into ``H[k:k+1, k*N/K:(k+1)*N/K]`` - row ``k``, a slice of *columns* - which with
N > K touches only cell 0 (for k = 0) and nothing else, so its theta has no block structure. Here
the block is written where the docstring of the method says it belongs: ``theta[k*N/K:(k+1)*N/K, k]``.
The reference also draws a Gamma(random/10, 1/1000) block that it immediately overwrites; we skip it.
Randomness comes from one ``numpy.random.Generator(seed)`` (the reference reseeds the global state
with 42 at import time), so the same seed gives the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("block", "dense")


@dataclass
class BlockSimulation:
    """Counts and ground truth of one simulation (row order = cell order, gene order)."""

    x: np.ndarray            # cells x genes int64 counts
    theta: np.ndarray        # cells x K
    beta: np.ndarray         # genes x K
    cell_block: np.ndarray   # cells, int (-1: none)
    gene_block: np.ndarray   # genes, int (-1: noise gene or dense mode)


def block_index(n: int, k: int) -> np.ndarray:
    """Block of each of ``n`` items split into ``k`` contiguous blocks as ``int(k*n/K)`` bounds."""
    out = np.full(n, -1, dtype=np.int64)
    for j in range(k):
        out[int(j * n / k):int((j + 1) * n / k)] = j
    return out


def _gamma(rng, shape, rate, size):
    return rng.gamma(shape, 1.0 / rate, size=size)


def generate_data(n_cells: int, n_factors: int, n_genes: int, *, mode: str, seed: int, alpha: float, eps: float,
                  beta_shape: float, beta_eps: float, noise_prop: float) -> BlockSimulation:
    """Simulate ``X ~ Poisson(theta beta^T)`` (see the module docstring); deterministic in ``seed``.

    The settings are those of schema ``simulate_blocks`` (no defaults here; `simulate` takes the options
    object).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if min(n_cells, n_genes) < n_factors or n_factors < 1:
        raise ValueError(f"need 1 <= K <= min(N, M); got N={n_cells}, K={n_factors}, M={n_genes}")
    if not 0.0 <= noise_prop < 1.0:
        raise ValueError(f"noise_prop must be in [0, 1); got {noise_prop}")
    rng = np.random.default_rng(seed)
    if mode == "dense":
        theta = rng.gamma(0.5, 0.1, size=(n_cells, n_factors))
        beta = rng.gamma(0.5, 0.1, size=(n_genes, n_factors))
        cell_block = np.full(n_cells, -1, np.int64)
        gene_block = np.full(n_genes, -1, np.int64)
    else:
        cell_block = block_index(n_cells, n_factors)
        theta = _gamma(rng, alpha, 1.0, (n_cells, n_factors))
        rows = np.arange(n_cells)
        theta[rows, cell_block] = _gamma(rng, alpha + eps, 1.0 / eps, n_cells)

        n_block_genes = int((1.0 - noise_prop) * n_genes)
        beta = np.empty((n_genes, n_factors))
        beta[:n_block_genes] = _gamma(rng, beta_shape, 1.0, (n_block_genes, n_factors))
        beta[n_block_genes:] = _gamma(rng, 0.7, 1.0, (n_genes - n_block_genes, n_factors))
        gene_block = np.full(n_genes, -1, np.int64)
        gene_block[:n_block_genes] = block_index(n_block_genes, n_factors)
        g = np.arange(n_block_genes)
        beta[g, gene_block[:n_block_genes]] = _gamma(rng, beta_shape + beta_eps, 1.0 / beta_eps, n_block_genes)
    x = rng.poisson(theta @ beta.T)
    return BlockSimulation(x=x, theta=theta, beta=beta, cell_block=cell_block, gene_block=gene_block)


def simulate(opts) -> BlockSimulation:
    """`generate_data` with the settings of an options object (``scfactor.layers.cli.SIMULATE``)."""
    return generate_data(opts.n_cells, opts.n_factors, opts.n_genes, mode=opts.mode, seed=opts.seed,
                         alpha=opts.alpha, eps=opts.eps, beta_shape=opts.beta_shape, beta_eps=opts.beta_eps,
                         noise_prop=opts.noise_prop)


def to_anndata(sim: BlockSimulation, params: dict | None = None):
    """AnnData with CSR int32 counts, ``obs['block']``/``var['block']`` labels and the truth.

    Cell names are ``"0".."N-1"`` and gene names ``"c0".."c<M-1>"`` (the notebook's ``write_h5`` names);
    truth in ``obsm['theta_true']`` and ``varm['beta_true']`` (survives preprocessing's subsetting).
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    def labels(b):
        cats = [f"k{j}" for j in range(int(b.max()) + 1)] if (b >= 0).any() else []
        return pd.Categorical([f"k{j}" if j >= 0 else "none" for j in b], categories=cats + ["none"])

    obs = pd.DataFrame({"block": labels(sim.cell_block)}, index=[str(i) for i in range(sim.x.shape[0])])
    var = pd.DataFrame({"block": labels(sim.gene_block)}, index=[f"c{i}" for i in range(sim.x.shape[1])])
    adata = ad.AnnData(X=sp.csr_matrix(sim.x.astype(np.int32)), obs=obs, var=var)
    adata.obsm["theta_true"] = sim.theta.astype(np.float64)
    adata.varm["beta_true"] = sim.beta.astype(np.float64)
    adata.uns["simulate"] = dict(params or {})
    return adata


def write_nnmf_h5(path, row_names, col_names, x) -> None:
    """Write a cells x genes matrix in neuralNMF's ``write_h5`` layout (group ``matrix``).

    Datasets ``barcodes`` (row names), ``indptr``/``indices``/``data`` (CSR by row), ``shape`` and
    ``features/id`` (column names); the layout `scfactor.core.io` reads as format ``nnmf_h5``.
    """
    import h5py
    import scipy.sparse as sp
    m = sp.csr_matrix(x)
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g.create_dataset("barcodes", data=np.array(row_names, dtype="S"), compression="gzip")
        g.create_dataset("indptr", data=m.indptr, compression="gzip")
        g.create_dataset("indices", data=m.indices, compression="gzip")
        g.create_dataset("data", data=m.data, compression="gzip")
        g.create_dataset("shape", data=np.array([len(row_names), len(col_names)]))
        g.create_group("features").create_dataset("id", data=np.array(col_names, dtype="S"),
                                                  compression="gzip")
