"""Training blocks of whole cells x every gene, streamed from a sparse count matrix.

An epoch walks over the cells in a seeded random order (seeded by ``(seed, epoch)``, so an epoch
can be replayed exactly after a restart), cut into ``ceil(cells / cells_per_block)`` blocks of
near-equal size (at most ``cells_per_block``, sizes differing by at most one), and yields for each
block the cells' indices, their dense counts against every gene and a weight per entry. Nothing of
size cells x genes is ever built, only one block at a time. The weights are normalised so that the
weighted sum of a block's per-entry losses is the block's mean loss (the train step sums).

Two sampling schemes, both expressed as weights on the dense block (every entry is computed; the
weights say which ones count, and how much):

* ``pointwise`` (losses poisson / nb / mse): every entry, zeros included. With ``zero_keep < 1``
  each zero is kept with that probability and weighted ``1 / zero_keep`` (an unbiased estimate of
  the block's mean loss over all its entries).
* ``implicit`` (loss bce, as NCF): each nonzero is a positive (label 1) and ``num_neg`` negatives per
  positive are drawn uniformly, with replacement, among that cell's zeros (label 0); a zero's weight
  is the number of times it was drawn. The block's loss is the mean over these samples.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp


class BlockStream:
    """Epoch-wise generator of (cells, dense counts, weights) blocks over a CSR cells x genes matrix."""

    def __init__(self, x, cells_per_block: int, seed: int, *, zero_keep: float, num_neg: int,
                 mode: str = "pointwise"):
        if mode not in ("pointwise", "implicit"):
            raise ValueError(f"unknown sampling mode {mode!r}")
        if not 0 < zero_keep <= 1:
            raise ValueError("zero_keep must be in (0, 1]")
        self.x = sp.csr_matrix(x, dtype=np.float32)
        self.x.sort_indices()
        self.n_cells, self.n_genes = self.x.shape
        self.cells_per_block = max(1, min(int(cells_per_block), self.n_cells))
        self.seed = int(seed)
        self.mode = mode
        self.zero_keep = float(zero_keep)
        self.num_neg = int(num_neg)
        self.entries_per_epoch = self.n_cells * self.n_genes

    @property
    def steps_per_epoch(self) -> int:
        """Blocks per epoch."""
        return math.ceil(self.n_cells / self.cells_per_block)

    def epoch(self, epoch: int, max_blocks: int | None = None):
        """Yield ``(cells int32 (b,), y float32 (b, genes), w float32 (b, genes))`` blocks of epoch ``epoch``."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(self.n_cells).astype(np.int32)
        for k, cells in enumerate(np.array_split(order, self.steps_per_epoch)):
            if max_blocks is not None and k >= max_blocks:
                return
            y = self.x[cells].toarray()
            w = self._implicit(y, rng) if self.mode == "implicit" else self._pointwise(y, rng)
            if self.mode == "implicit":
                y = (y > 0).astype(np.float32)
            yield cells, y, w

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
