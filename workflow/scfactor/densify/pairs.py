"""Streaming (cell, gene, value, weight) training batches from a sparse count matrix.

Nothing of size cells x genes is ever built: an epoch walks over the cells in a seeded random
order, a chunk of cells at a time (``chunk_entries`` matrix entries), densifies only that chunk,
shuffles its entries and cuts them into batches. Batches therefore mix hundreds of cells and all
genes, and the order changes every epoch (seeded by ``(seed, epoch)``, so an epoch can be replayed
exactly after a restart).

Two sampling schemes:

* ``pointwise`` (losses poisson / nb / mse): every entry, zeros included. With ``zero_keep < 1``
  each zero is kept with that probability and weighted ``1 / zero_keep``; weights are scaled by
  the expected kept fraction so that the mean weighted loss of a batch is an unbiased estimate of
  the mean loss over the full matrix.
* ``implicit`` (loss bce, as NCF): each nonzero is a positive (label 1) followed by ``num_neg``
  genes drawn uniformly among that cell's zeros (label 0).

Every batch has exactly ``batch_size`` rows (the last one of an epoch is padded with weight-0
rows) so that a compiled train step never retraces.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp


class PairStream:
    """Epoch-wise batch generator over a CSR cells x genes matrix (see module docstring)."""

    def __init__(self, x, batch_size: int, seed: int, *, zero_keep: float, num_neg: int, chunk_entries: int,
                 mode: str = "pointwise"):
        if mode not in ("pointwise", "implicit"):
            raise ValueError(f"unknown sampling mode {mode!r}")
        if not 0 < zero_keep <= 1:
            raise ValueError("zero_keep must be in (0, 1]")
        self.x = sp.csr_matrix(x, dtype=np.float32)
        self.x.sort_indices()
        self.n_cells, self.n_genes = self.x.shape
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.mode = mode
        self.zero_keep = float(zero_keep)
        self.num_neg = int(num_neg)
        self.cells_per_chunk = max(1, int(chunk_entries) // max(1, self.n_genes))
        n_entries = self.n_cells * self.n_genes
        nnz = self.x.nnz
        if mode == "pointwise":
            self.samples_per_epoch = nnz + (n_entries - nnz) * self.zero_keep  # expected
            self.kept_fraction = self.samples_per_epoch / n_entries
        else:
            self.samples_per_epoch = nnz * (1 + self.num_neg)
            self.kept_fraction = 1.0

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch (exact for full sampling, expected under zero subsampling)."""
        return max(1, math.ceil(self.samples_per_epoch / self.batch_size))

    def epoch(self, epoch: int, max_batches: int | None = None):
        """Yield ``(cells int32, genes int32, y float32, w float32)`` batches of epoch ``epoch``."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(self.n_cells)
        buf: list[tuple] = []
        n_buf = 0
        done = 0
        for start in range(0, self.n_cells, self.cells_per_chunk):
            cells = np.sort(order[start:start + self.cells_per_chunk])
            parts = self._chunk(cells, rng)
            buf.append(parts)
            n_buf += parts[0].size
            while n_buf >= self.batch_size:
                batch, buf, n_buf = _take(buf, self.batch_size)
                yield batch
                done += 1
                if max_batches is not None and done >= max_batches:
                    return
        if n_buf:
            batch, buf, n_buf = _take(buf, n_buf)
            yield _pad(batch, self.batch_size)

    # ------------------------------------------------------------------ chunk samplers
    def _chunk(self, cells: np.ndarray, rng) -> tuple:
        sub = self.x[cells]
        if self.mode == "implicit":
            return self._implicit(cells, sub, rng)
        dense = sub.toarray().ravel()
        n = dense.size
        if self.zero_keep < 1.0:
            nz = dense != 0
            keep = nz | (rng.random(n) < self.zero_keep)
            flat = np.flatnonzero(keep)
            w = np.where(nz[flat], 1.0, 1.0 / self.zero_keep) * self.kept_fraction
        else:
            flat = np.arange(n)
            w = np.ones(n)
        perm = rng.permutation(flat.size)
        flat, w = flat[perm], w[perm]
        c = cells[flat // self.n_genes].astype(np.int32)
        g = (flat % self.n_genes).astype(np.int32)
        return c, g, dense[flat].astype(np.float32), w.astype(np.float32)

    def _implicit(self, cells, sub, rng) -> tuple:
        counts = np.diff(sub.indptr)
        pos_rows = np.repeat(np.arange(cells.size), counts)
        pos_genes = sub.indices
        # negatives: num_neg genes per positive, uniform among the cell's zeros (rejection sampling)
        neg_rows = np.repeat(pos_rows, self.num_neg)
        neg_genes = rng.integers(0, self.n_genes, size=neg_rows.size)
        keys = pos_rows.astype(np.int64) * self.n_genes + pos_genes  # sorted (CSR, sorted indices)
        valid = np.ones(neg_rows.size, dtype=bool)
        for _ in range(50):
            k = neg_rows.astype(np.int64) * self.n_genes + neg_genes
            idx = np.minimum(np.searchsorted(keys, k), max(keys.size - 1, 0))
            hit = (keys[idx] == k) if keys.size else np.zeros(k.size, dtype=bool)
            hit &= valid
            if not hit.any():
                break
            neg_genes[hit] = rng.integers(0, self.n_genes, size=int(hit.sum()))
        else:  # cells (almost) without zeros: drop the negatives that still collide
            valid &= ~hit
        rows = np.concatenate([pos_rows, neg_rows[valid]])
        genes = np.concatenate([pos_genes, neg_genes[valid]])
        y = np.concatenate([np.ones(pos_rows.size), np.zeros(int(valid.sum()))])
        perm = rng.permutation(rows.size)
        return (cells[rows[perm]].astype(np.int32), genes[perm].astype(np.int32),
                y[perm].astype(np.float32), np.ones(rows.size, dtype=np.float32))


def _take(buf: list, n: int):
    """Take the first ``n`` rows out of a list of array tuples; return (batch, rest, n_rest)."""
    out, rest, need = [], [], n
    for parts in buf:
        if need == 0:
            rest.append(parts)
            continue
        m = parts[0].size
        if m <= need:
            out.append(parts)
            need -= m
        else:
            out.append(tuple(a[:need] for a in parts))
            rest.append(tuple(a[need:] for a in parts))
            need = 0
    batch = tuple(np.concatenate([p[i] for p in out]) for i in range(4))
    return batch, rest, sum(p[0].size for p in rest)


def _pad(batch: tuple, size: int) -> tuple:
    """Pad a short batch to ``size`` rows with weight-0 copies of row 0."""
    n = batch[0].size
    if n == size:
        return batch
    pad = size - n
    c, g, y, w = batch
    return (np.concatenate([c, np.full(pad, c[0], c.dtype)]), np.concatenate([g, np.full(pad, g[0], g.dtype)]),
            np.concatenate([y, np.zeros(pad, y.dtype)]), np.concatenate([w, np.zeros(pad, w.dtype)]))
