"""The model-based clustering notebook's negative-binomial mixture simulator (``simulate(n, p, k, s, seed)``),
reproduced exactly.

The notebook draws labels uniformly, ``log_mean ~ U(-12, -6)`` and ``log_inv_disp ~ U(0, 4)`` per
(gene, component) (values from Sarkar et al. 2019), then ``lam ~ NB(r, 1 / (1 + s mu / r))`` and
``x ~ Poisson(lam)``. Note the notebook's quirk, kept on purpose: the NB draw is itself a count and is
passed through a second Poisson, so the data are slightly over-dispersed relative to the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate(n: int, p: int, k: int, s: float, seed: int):
    """Return ``(x [n, p] int, z [n, k] one-hot, log_mean [p, k], log_inv_disp [p, k])`` as in the notebook.

    The random stream is identical to the notebook's: same generator, same draws in the same order (the
    notebook uses ``s=1e4``, ``seed=1``; the defaults of ``simulate_nbmix.schema.yaml``).
    """
    rng = np.random.default_rng(seed)
    z = pd.get_dummies(np.argmax(rng.uniform(size=(n, k)), axis=1)).values
    log_mean = rng.uniform(-12, -6, size=(p, k))
    log_inv_disp = rng.uniform(0, 4, size=(p, k))
    lam = rng.negative_binomial(n=np.exp(z @ log_inv_disp.T),
                                p=1 / (1 + s * (z @ np.exp(log_mean - log_inv_disp).T)))
    x = rng.poisson(lam)
    return x, z.astype(np.int64), log_mean, log_inv_disp


def simulate_anndata(n: int, p: int, k: int, s: float, seed: int, name: str):
    """The simulation as AnnData: int32 CSR counts in ``X`` (and ``layers['counts']``), ``obs['label']``
    (true component, categorical ``c0..c{k-1}``), ``obsm['z_true']``, ``varm['log_mean_true']`` and
    ``varm['log_inv_disp_true']`` (``[p, k]``), settings in ``uns['simulate']``.

    Note: ``pd.get_dummies`` drops components that no cell drew, so ``z`` can have fewer than k
    columns for tiny n (as in the notebook); ``obs['label']`` uses the drawn component index.
    """
    import anndata as ad
    import scipy.sparse as sp
    x, z, log_mean, log_inv_disp = simulate(n, p, k, s, seed)
    comp = z.argmax(axis=1)
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n)])
    obs["label"] = pd.Categorical([f"c{c}" for c in comp], categories=[f"c{c}" for c in range(k)])
    var = pd.DataFrame(index=[f"gene{j}" for j in range(p)])
    X = sp.csr_matrix(x.astype(np.int32))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.layers["counts"] = X.copy()
    z_full = np.zeros((n, k), dtype=np.int8)
    z_full[np.arange(n), comp] = 1
    adata.obsm["z_true"] = z_full
    adata.varm["log_mean_true"] = log_mean
    adata.varm["log_inv_disp_true"] = log_inv_disp
    adata.uns["simulate"] = {"simulator": "nbmix (the model-based clustering notebook)", "name": name, "n": n, "p": p, "k": k, "s": float(s),
                             "seed": seed}
    return adata
