"""Shard data for trace-norm MTL: splits, per-gene samples, feature constants, batches.

Nothing here materialises the trace-norm MTL notebook's per-gene feature tensors (genes x cells x TFs x 5). The five
features of TF t for gene g in cell c are affine in the TF's expression e[c, t]::

    [e, mean[g,t], sum[g,t], e * mean[g,t], e * sum[g,t]]  (each standardised with gene g's training stats)

so feature f equals ``A[g,t,f] * e[c,t] + C[g,t,f]``. `feature_constants` returns A and C
(genes x TFs x 5); the model builds features per batch from the expression rows it gathers.
Columns that are constant over the training cells (the activities, or any column with zero
standard deviation) are left unstandardised, as in the notebook.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ..core.errors import InputError


def shard_seed(seed: int, tissue: str, cluster: int, rep: int) -> np.random.SeedSequence:
    """The `SeedSequence` of one (tissue, cluster, replicate) shard: fixed by the config seed + wildcards."""
    return np.random.SeedSequence([int(seed), zlib.crc32(str(tissue).encode()), int(cluster), int(rep)])


def split_cells(n_cells: int, test_ratio: float, seed: int, rep: int):
    """Seeded train/test cell indices of replicate ``rep`` (the same for lasso and MTL)."""
    rng = np.random.default_rng([int(seed), int(rep), 7919])
    perm = rng.permutation(n_cells)
    n_test = max(1, int(np.ceil(test_ratio * n_cells)))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


@dataclass
class ShardData:
    """Everything one shard trains on, small: expression once, per-gene sample lists."""

    genes: np.ndarray
    expr: np.ndarray          # cells x TFs float32 (all cells of the tissue)
    y: np.ndarray             # genes x cells float32, standardised with training stats (NaN = missing)
    train: list               # per gene: cell indices with velocity (training split)
    test: list                # per gene: cell indices with velocity (test split)
    A: np.ndarray             # genes x TFs x 5
    C: np.ndarray             # genes x TFs x 5

    @property
    def n_genes(self) -> int:
        """Genes (tasks) of the shard."""
        return len(self.genes)

    @property
    def n_tfs(self) -> int:
        """TFs (expression columns)."""
        return self.expr.shape[1]


def feature_constants(expr, train_idx, act_mean, act_sum):
    """A, C (genes x TFs x 5) such that feature f = A * e + C, standardised with training stats.

    ``train_idx``: per gene the training cells; ``act_mean``/``act_sum``: genes x TFs.
    """
    G, T = act_mean.shape
    A = np.zeros((G, T, 5), dtype=np.float64)
    C = np.zeros((G, T, 5), dtype=np.float64)
    for g in range(G):
        e = expr[train_idx[g]].astype(np.float64)
        mu = e.mean(axis=0)
        sd = e.std(axis=0)
        m, s = act_mean[g].astype(np.float64), act_sum[g].astype(np.float64)
        ok = sd > 0
        A[g, :, 0] = np.where(ok, 1.0 / np.where(ok, sd, 1.0), 1.0)
        C[g, :, 0] = np.where(ok, -mu / np.where(ok, sd, 1.0), 0.0)
        C[g, :, 1] = m
        C[g, :, 2] = s
        for f, a in ((3, m), (4, s)):
            sda = np.abs(a) * sd
            okf = sda > 0
            A[g, :, f] = np.where(okf, a / np.where(okf, sda, 1.0), a)
            C[g, :, f] = np.where(okf, -a * mu / np.where(okf, sda, 1.0), 0.0)
    return A.astype(np.float32), C.astype(np.float32)


def explicit_features(expr_rows, A_g, C_g):
    """The notebook's per-gene feature tensor (cells x TFs x 5) for one gene (tests, benchmark)."""
    return expr_rows[:, :, None] * A_g[None] + C_g[None]


def build_shard(data, genes, test_ratio: float, seed: int, rep: int, shard: str = "shard") -> ShardData:
    """Assemble a `ShardData` for ``genes`` of a `TissueData` on replicate ``rep``'s split.

    Missing velocities are dropped per gene; each gene needs >= 2 training and >= 1 test cells
    with velocity, else `InputError`.
    """
    genes = np.asarray(genes)
    if len(genes) == 0:
        raise InputError(shard, "the cluster has no genes")
    data.require_activity(genes)
    gpos = np.array([np.where(data.gene_ids == g)[0][0] for g in genes])
    tr, te = split_cells(len(data.barcodes), test_ratio, seed, rep)
    velo = data.velo[:, gpos].T.astype(np.float64)        # genes x cells
    train, test = [], []
    y = np.full_like(velo, np.nan)
    for k, g in enumerate(genes):
        ok = ~np.isnan(velo[k])
        a, b = tr[ok[tr]], te[ok[te]]
        if len(a) < 2 or len(b) < 1:
            raise InputError(data.files["velo"], f"gene {g!r} of tissue {data.tissue!r} has velocity in only "
                                                 f"{len(a)} training / {len(b)} test cells (all-NaN velocity?)")
        mu, sd = velo[k, a].mean(), velo[k, a].std()
        sd = sd if sd > 0 else 1.0
        y[k] = (velo[k] - mu) / sd
        train.append(a)
        test.append(b)
    A, C = feature_constants(data.expr, train, data.act_mean[gpos], data.act_sum[gpos])
    return ShardData(genes=genes, expr=data.expr, y=y.astype(np.float32), train=train, test=test, A=A, C=C)


def epoch_batches(train, batch_size: int, rng: np.random.Generator):
    """The notebook's per-epoch resampling: every gene gets the same number of batches.

    Each gene's training cells are shuffled and repeated (``np.resize``) up to the largest
    gene's count; returns a list of (genes x batch) index arrays.
    """
    max_n = max(len(t) for t in train)
    idx = np.empty((len(train), max_n), dtype=np.int32)
    for k, t in enumerate(train):
        idx[k] = np.resize(t[rng.permutation(len(t))], max_n)
    return [idx[:, s:s + batch_size] for s in range(0, max_n, batch_size)]


def r2_score(y, pred) -> float:
    """Coefficient of determination (sklearn's definition), float64."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot
