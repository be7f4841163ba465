"""Training tiles of cells x genes, streamed from a sparse count matrix.

An epoch shuffles the cells and the genes (seeded by ``(seed, epoch)``, so an epoch can be replayed
exactly after a restart), cuts them into ``ceil(cells / cells_per_block)`` cell blocks and
``ceil(genes / genes_per_block)`` gene blocks of near-equal size (sizes differing by at most one),
and visits every (cell block, gene block) tile once, in a seeded random order. For each tile it
yields the cells' and genes' indices, their dense counts and a weight per entry. Nothing of size
cells x genes is ever built, only one tile at a time. Every tile of an epoch touches a new mix of
cells and genes, so each cell's embeddings get ``gene blocks`` updates per epoch (one with whole-cell
blocks, ``genes_per_block >= genes``). The weights are normalised so that the weighted sum of a tile's
per-entry losses is the tile's mean loss (the train step sums).

Two sampling schemes, both expressed as weights on the dense tile (every entry is computed; the
weights say which ones count, and how much):

* ``pointwise`` (losses poisson / nb / mse): every entry, zeros included. With ``zero_keep < 1``
  each zero is kept with that probability and weighted ``1 / zero_keep`` (an unbiased estimate of
  the tile's mean loss over all its entries).
* ``implicit`` (loss bce, as NCF): each nonzero is a positive (label 1) and ``num_neg`` negatives per
  positive are drawn uniformly, with replacement, among that cell's zeros in the tile (label 0); a
  zero's weight is the number of times it was drawn. The tile's loss is the mean over these samples.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from .spill import is_spilled


class BlockStream:
    """Epoch-wise generator of (cells, genes, dense counts, weights) tiles over a CSR cells x genes matrix (or a
    `scfactor.densify.spill.SpilledCSR`, whose tiles' rows are read from its files)."""

    def __init__(self, x, cells_per_block: int, seed: int, *, zero_keep: float, num_neg: int,
                 mode: str = "pointwise", genes_per_block: int | None = None):
        if mode not in ("pointwise", "implicit"):
            raise ValueError(f"unknown sampling mode {mode!r}")
        if not 0 < zero_keep <= 1:
            raise ValueError("zero_keep must be in (0, 1]")
        if is_spilled(x):  # float32, canonical, rows read on demand
            self.x = x
        else:
            self.x = sp.csr_matrix(x, dtype=np.float32)
            self.x.sort_indices()
        self.n_cells, self.n_genes = self.x.shape
        self.cells_per_block = max(1, min(int(cells_per_block), self.n_cells))
        g = self.n_genes if genes_per_block is None else genes_per_block
        self.genes_per_block = max(1, min(int(g), self.n_genes))
        self.seed = int(seed)
        self.mode = mode
        self.zero_keep = float(zero_keep)
        self.num_neg = int(num_neg)
        self.entries_per_epoch = self.n_cells * self.n_genes

    @property
    def cell_blocks(self) -> int:
        """Cell blocks per epoch."""
        return math.ceil(self.n_cells / self.cells_per_block)

    @property
    def gene_blocks(self) -> int:
        """Gene blocks per epoch."""
        return math.ceil(self.n_genes / self.genes_per_block)

    @property
    def steps_per_epoch(self) -> int:
        """Tiles per epoch."""
        return self.cell_blocks * self.gene_blocks

    def epoch(self, epoch: int, max_blocks: int | None = None):
        """Yield ``(cells int32 (b,), genes int32 (g,), y float32 (b, g), w float32 (b, g))`` tiles of
        epoch ``epoch`` (the first ``max_blocks`` only, when given)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        cell_parts = np.array_split(rng.permutation(self.n_cells).astype(np.int32), self.cell_blocks)
        gene_parts = np.array_split(rng.permutation(self.n_genes).astype(np.int32), self.gene_blocks)
        tiles = rng.permutation(self.steps_per_epoch)
        whole = self.gene_blocks == 1
        for k, t in enumerate(tiles):
            if max_blocks is not None and k >= max_blocks:
                return
            cells = cell_parts[t // self.gene_blocks]
            genes = np.arange(self.n_genes, dtype=np.int32) if whole else np.sort(gene_parts[t % self.gene_blocks])
            y = self.x[cells].toarray() if whole else self.x[cells].toarray()[:, genes]
            w = self._implicit(y, rng) if self.mode == "implicit" else self._pointwise(y, rng)
            if self.mode == "implicit":
                y = (y > 0).astype(np.float32)
            yield cells, genes, y, w

    def _pointwise(self, y, rng) -> np.ndarray:
        if self.zero_keep >= 1.0:
            w = np.ones(y.shape, dtype=np.float32)
        else:
            nz = y != 0
            keep = nz | (rng.random(y.shape) < self.zero_keep)
            w = np.where(nz, 1.0, 1.0 / self.zero_keep) * keep
        return (w / y.size).astype(np.float32)

    def _implicit(self, y, rng) -> np.ndarray:
        zero = y == 0
        n_pos = (~zero).sum(axis=1)
        n_zero = zero.sum(axis=1)
        draws = np.where(n_zero > 0, n_pos * self.num_neg, 0)
        rows = np.repeat(np.arange(y.shape[0]), draws)
        # the k-th zero of a row, uniform, mapped to its position among all zeros of the block (row-major)
        first = np.concatenate([[0], np.cumsum(n_zero)[:-1]])
        pick = first[rows] + np.floor(rng.random(rows.size) * n_zero[rows]).astype(np.int64)
        w = (~zero).astype(np.float64)
        w[zero] = np.bincount(pick, minlength=int(n_zero.sum()))
        total = w.sum()
        return (w / max(total, 1.0)).astype(np.float32)
