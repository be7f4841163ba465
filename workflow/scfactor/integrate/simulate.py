"""Simulator (c): batches that share factors plus batch-specific factors, Poisson counts.

Generative model (iNMF's own, with known truth): for batch i and cell c in planted group g(c),

    H_i[c]   = background ~ Gamma(0.3, 0.2) on every shared factor, plus Gamma(8, 1) on factor g(c)
    S-load   = Gamma(4, 1) on the batch's specific factor for a fraction ``specific_fraction`` of
               cells (others 0)
    rate[c]  = H_i[c] (W + V_i) + Hspec_i[c] S_i,  rescaled to the cell's library size
               ~ LogNormal(log(library_size), 0.3)
    X_i[c]   ~ Poisson(rate[c])

``W`` (shared metagenes): every factor has its own block of marker genes (Gamma(2, 1.5)) over a weak
Gamma(0.3, 0.05) background. ``V_i`` (batch-specific perturbation of shared factors): a random
``v_fraction`` of entries gets Gamma(1, v_scale). ``S_i`` (batch-only factors): own marker blocks.
Group proportions differ per batch (Dirichlet(5)), so batches are unbalanced as in real data.
Cells are generated and written in chunks, so large sets (200k cells) never sit in memory whole.

The settings ``s`` are the options object of `scfactor.integrate.cli.SIMULATE` (fields and defaults from
``workflow/schemas/simulate_batches.schema.yaml``; ``SIMULATE.defaults(**overrides)`` builds one).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.errors import ScfactorError


def batch_names(s) -> list[str]:
    """Batch names: the configured ``batch_names``, else b1..bN."""
    if s.batch_names:
        return list(s.batch_names)
    return [f"b{i + 1}" for i in range(len(s.n_cells))]


def check_settings(s) -> None:
    """Raise `ScfactorError` (one line) for settings the schema's ranges cannot rule out."""
    if len(s.n_cells) < 2 or min(s.n_cells) < 1:
        raise ScfactorError("--n-cells needs at least two positive batch sizes")
    if s.batch_names and len(s.batch_names) != len(s.n_cells):
        raise ScfactorError(f"--batch-names has {len(s.batch_names)} names for {len(s.n_cells)} batches")
    if len(set(s.batch_names)) != len(s.batch_names):
        raise ScfactorError("--batch-names must be distinct")
    blocks = s.k_shared + len(s.n_cells) * s.k_specific
    if s.k_shared < 1 or s.k_specific < 0 or s.n_genes < 2 * blocks:
        raise ScfactorError(f"--n-genes ({s.n_genes}) must be at least twice the number of factor "
                            f"blocks ({blocks}); --k-shared >= 1, --k-specific >= 0")
    if not 0 <= s.specific_fraction <= 1 or not 0 <= s.v_fraction <= 1:
        raise ScfactorError("--specific-fraction and --v-fraction must lie in [0, 1]")
    if s.library_size <= 0 or s.v_scale < 0 or s.chunk < 1:
        raise ScfactorError("--library-size must be > 0, --v-scale >= 0, --chunk >= 1")


def _marker_blocks(rng, n_genes, n_blocks):
    """Disjoint random gene blocks, one per factor (equal sizes, remainder unused)."""
    perm = rng.permutation(n_genes)
    size = n_genes // n_blocks
    return [perm[j * size:(j + 1) * size] for j in range(n_blocks)]


def truth(s):
    """Ground-truth metagenes: W (k x genes), V_i and S_i per batch, group proportions per batch."""
    rng = np.random.default_rng([s.seed, 0])
    nb = len(s.n_cells)
    blocks = _marker_blocks(rng, s.n_genes, s.k_shared + nb * s.k_specific)
    w = rng.gamma(0.3, 0.05, (s.k_shared, s.n_genes))
    for j in range(s.k_shared):
        w[j, blocks[j]] += rng.gamma(2.0, 1.5, len(blocks[j]))
    v, spec, props = [], [], []
    for i in range(nb):
        vi = np.where(rng.random((s.k_shared, s.n_genes)) < s.v_fraction,
                      rng.gamma(1.0, s.v_scale, (s.k_shared, s.n_genes)), 0.0)
        si = rng.gamma(0.3, 0.05, (s.k_specific, s.n_genes))
        for j in range(s.k_specific):
            blk = blocks[s.k_shared + i * s.k_specific + j]
            si[j, blk] += rng.gamma(2.0, 1.5, len(blk))
        v.append(vi)
        spec.append(si)
        props.append(rng.dirichlet(np.full(s.k_shared, 5.0)))
    return w, v, spec, props


def cells(s, i: int, w, v, spec, prop):
    """Yield chunks (groups, H, Hspec, counts CSR int32) of batch ``i``, deterministic given the seed."""
    rng = np.random.default_rng([s.seed, 1, i])
    n = s.n_cells[i]
    for start in range(0, n, s.chunk):
        m = min(s.chunk, n - start)
        groups = rng.choice(s.k_shared, size=m, p=prop)
        h = rng.gamma(0.3, 0.2, (m, s.k_shared))
        h[np.arange(m), groups] += rng.gamma(8.0, 1.0, m)
        hs = np.where(rng.random((m, s.k_specific)) < s.specific_fraction,
                      rng.gamma(4.0, 1.0, (m, s.k_specific)), 0.0)
        rate = h @ (w + v[i]) + hs @ spec[i]
        lib = rng.lognormal(np.log(s.library_size), 0.3, m)
        rate *= (lib / rate.sum(1))[:, None]
        x = rng.poisson(rate).astype(np.int32)
        yield groups, h, hs, sp.csr_matrix(x)


def write_simulation(s, path) -> dict:
    """Simulate every batch and write one ``.h5ad`` (counts in X, truth in obsm/varm/uns), atomically.

    ``obs['batch']``, ``obs['label']`` (planted group ``g<j>``); ``obsm['H_true']``,
    ``obsm['Hspec_true']``; ``varm['W_true']``, ``varm['V_true_<batch>']``, ``varm['S_true_<batch>']``
    (genes x factors). Returns a summary dict.
    """
    import h5py
    from anndata.io import sparse_dataset, write_elem

    from ..core.io import atomic_output

    check_settings(s)
    names = batch_names(s)
    w, v, spec, props = truth(s)
    genes = [f"gene{j:05d}" for j in range(s.n_genes)]
    obs_parts, h_parts, hs_parts = [], [], []
    total_nnz = 0
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["encoding-type"] = "anndata"
            f.attrs["encoding-version"] = "0.1.0"
            first = True
            for i, name in enumerate(names):
                for c, (groups, h, hs, x) in enumerate(cells(s, i, w, v, spec, props[i])):
                    if first:
                        write_elem(f, "X", x)
                        ds = sparse_dataset(f["X"])
                        first = False
                    else:
                        ds.append(x)
                    total_nnz += x.nnz
                    idx = [f"{name}_c{c * s.chunk + j:07d}" for j in range(x.shape[0])]
                    obs_parts.append(pd.DataFrame({"batch": name, "label": [f"g{g}" for g in groups]}, index=idx))
                    h_parts.append(h)
                    hs_parts.append(hs)
            obs = pd.concat(obs_parts)
            obs["batch"] = pd.Categorical(obs["batch"], categories=names)
            obs["label"] = pd.Categorical(obs["label"], categories=[f"g{j}" for j in range(s.k_shared)])
            write_elem(f, "obs", obs)
            write_elem(f, "var", pd.DataFrame(index=genes))
            write_elem(f, "obsm", {"H_true": np.vstack(h_parts), "Hspec_true": np.vstack(hs_parts)})
            varm = {"W_true": w.T}
            for name, vi, si in zip(names, v, spec):
                varm[f"V_true_{name}"] = vi.T
                varm[f"S_true_{name}"] = si.T
            write_elem(f, "varm", varm)
            for key in ("layers", "obsp", "varp"):
                write_elem(f, key, {})
            params = {k: (list(val) if isinstance(val, tuple) else val)
                      for k, val in dataclasses.asdict(s).items()}
            params["batch_names"] = names
            write_elem(f, "uns", {"simulate_batches": {
                "params": params, "group_proportions": np.vstack(props),
                "model": "X_i ~ Poisson(libsize * normalise(H_i (W + V_i) + Hspec_i S_i))"}})
    return {"cells": int(sum(s.n_cells)), "genes": s.n_genes, "nnz": int(total_nnz), "batches": names}
