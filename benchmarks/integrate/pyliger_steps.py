#!/usr/bin/env python
"""pyliger 0.2.4's whole chain on raw counts, every step's output saved (runs in the peer venv).

create_liger -> normalize -> select_genes(var_thresh 0.1) -> scale_not_center -> optimize_ALS ->
quantile_norm -> leiden_cluster. Input: an .npz written by parity.py (per batch: raw counts CSR, cell
names; gene names). Output .npz: selected genes; per batch i the scaled matrix (x{i}_*), H{i},
V{i}, H_norm{i}, qn_cluster{i} (refined max-factor clusters), leiden{i}; W.

Usage: pyliger_steps.py IN.npz OUT.npz --k K --lam L --max-iters N --thresh T --nrep R --seed S
       --resolution RES
"""
import argparse
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402


def load(path):
    """Per-batch raw AnnData objects named as pyliger needs them."""
    z = np.load(path, allow_pickle=False)
    genes = z["genes"].astype(str)
    out = []
    for i, name in enumerate(z["batches"].astype(str)):
        m = sp.csr_matrix((z[f"c{i}_data"], z[f"c{i}_indices"], z[f"c{i}_indptr"]), shape=tuple(z[f"c{i}_shape"]))
        obs = pd.DataFrame(index=pd.Index(z[f"c{i}_cells"].astype(str), name="barcode"))
        a = ad.AnnData(X=sp.csr_matrix(m, dtype=np.float64), obs=obs,
                       var=pd.DataFrame(index=pd.Index(genes, name="gene")))
        a.uns["sample_name"] = name
        out.append(a)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inp")
    p.add_argument("out")
    for name, typ in (("k", int), ("lam", float), ("max-iters", int), ("thresh", float), ("nrep", int),
                      ("seed", int), ("resolution", float)):
        p.add_argument(f"--{name}", type=typ, required=True)
    a = p.parse_args()
    import pyliger
    lig = pyliger.create_liger(load(a.inp))
    pyliger.normalize(lig)
    pyliger.select_genes(lig, var_thresh=0.1)
    pyliger.scale_not_center(lig)
    out = {"genes": np.asarray(lig.var_genes).astype(str)}
    for i, x in enumerate(lig.adata_list):
        m = sp.csr_matrix(x.layers["scale_data"])
        out[f"x{i}_data"], out[f"x{i}_indices"], out[f"x{i}_indptr"] = m.data, m.indices, m.indptr
        out[f"x{i}_shape"] = np.asarray(m.shape)
        out[f"x{i}_cells"] = np.asarray(x.obs_names).astype(str)
        out[f"x{i}_genes"] = np.asarray(x.var_names).astype(str)
    pyliger.optimize_ALS(lig, k=a.k, value_lambda=a.lam, max_iters=a.max_iters, thresh=a.thresh, nrep=a.nrep,
                         rand_seed=a.seed)
    out["W"] = np.asarray(lig.adata_list[0].varm["W"]).T
    for i, x in enumerate(lig.adata_list):
        out[f"H{i}"], out[f"V{i}"] = np.asarray(x.obsm["H"]), np.asarray(x.varm["V"]).T
    pyliger.quantile_norm(lig)
    for i, x in enumerate(lig.adata_list):
        out[f"H_norm{i}"] = np.asarray(x.obsm["H_norm"])
        out[f"qn_cluster{i}"] = np.asarray(x.obs["cluster"]).astype(int)
    pyliger.leiden_cluster(lig, resolution=a.resolution)
    for i, x in enumerate(lig.adata_list):
        out[f"leiden{i}"] = np.asarray(x.obs["cluster"]).astype(int)
    np.savez(a.out, **out)
    print(f"pyliger: {len(out['genes'])} genes, k={a.k}, clusters "
          f"{len(np.unique(np.concatenate([out[f'leiden{i}'] for i in range(len(lig.adata_list))])))}")


if __name__ == "__main__":
    main()
