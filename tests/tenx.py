"""Test data shaped like Cell Ranger output: 10x folders (matrix.mtx.gz, barcodes.tsv.gz, features.tsv.gz)
and sample sheets, built from small synthetic counts or from the bundled PBMC 3k counts."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp

from conftest import RESOURCES

PBMC3K = RESOURCES / "pbmc3k" / "pbmc3k_counts_2700x13714.h5ad"


def ensembl_ids(n: int, offset: int = 0) -> list[str]:
    """Made-up human Ensembl gene IDs."""
    return [f"ENSG{offset + i:011d}" for i in range(n)]


def write_10x(folder, counts, barcodes, ids, symbols) -> Path:
    """Write a Cell Ranger v3 folder: ``counts`` is cells x genes; features hold ID, symbol, type."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "matrix.mtx.gz", "wb") as f:
        scipy.io.mmwrite(f, sp.coo_matrix(sp.csr_matrix(counts).T), field="integer")
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as f:
        f.write("".join(f"{b}\n" for b in barcodes))
    with gzip.open(folder / "features.tsv.gz", "wt") as f:
        f.write("".join(f"{i}\t{s}\tGene Expression\n" for i, s in zip(ids, symbols)))
    return folder


def write_10x_h5(path, counts, barcodes, ids, symbols) -> Path:
    """Write a Cell Ranger v3 ``filtered_feature_bc_matrix.h5``: ``counts`` is cells x genes."""
    import h5py
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    csc = sp.csc_matrix(sp.csr_matrix(counts).T)  # genes x cells, compressed over cells
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(barcodes, dtype="S")
        m["data"], m["indices"], m["indptr"] = csc.data.astype(np.int32), csc.indices, csc.indptr
        m["shape"] = np.array(csc.shape)
        ft = m.create_group("features")
        ft["id"] = np.array(ids, dtype="S")
        ft["name"] = np.array(symbols, dtype="S")
        ft["feature_type"] = np.array(["Gene Expression"] * len(ids), dtype="S")
        ft["genome"] = np.array(["GRCh38"] * len(ids), dtype="S")
    return path


def barcodes(n: int, seed: int) -> list[str]:
    """``n`` distinct 10x-like barcodes (16 bases + ``-1``)."""
    rng = np.random.default_rng(seed)
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(list("ACGT"), 16)) + "-1")
    return sorted(out)


def synthetic_counts(n_cells: int, n_genes: int, seed: int) -> np.ndarray:
    """Poisson counts with a few mitochondrial-like high genes."""
    rng = np.random.default_rng(seed)
    return rng.poisson(rng.gamma(1.0, 2.0, size=n_genes), size=(n_cells, n_genes)).astype(np.int32)


def symbols(n_genes: int) -> list[str]:
    """Gene symbols: ``MT-`` genes first, then ``GENE<i>``."""
    return [f"MT-G{i}" for i in range(3)] + [f"GENE{i}" for i in range(3, n_genes)]


def pbmc_samples(root, n_cells: int = 150, n_genes: int = 1500, n_shared_barcodes: int = 25) -> dict:
    """Two 10x folders from the bundled PBMC 3k counts, like two Cell Ranger runs of one experiment.

    Sample ``donorA``: the first ``n_cells`` cells; two of its genes carry the symbol of another gene
    (duplicated symbols, as in 10x's own hg19 PBMC 3k matrix). Sample ``donorB``: the next ``n_cells``
    cells, whose first ``n_shared_barcodes`` barcodes are also barcodes of donorA (a collision). Genes:
    the ``n_genes`` most detected ones plus every MT- gene. Returns the folders and what was planted.
    """
    import anndata as ad
    a = ad.read_h5ad(PBMC3K)
    x = sp.csr_matrix(a.X)
    detected = np.asarray((x[: 2 * n_cells] > 0).sum(axis=0)).ravel()
    mito = np.flatnonzero(a.var_names.str.startswith("MT-"))
    top = [j for j in np.argsort(-detected, kind="stable") if j not in set(mito)][: n_genes - len(mito)]
    genes = np.sort(np.concatenate([top, mito]))
    syms = list(a.var_names[genes])
    ids = ensembl_ids(len(genes))
    root = Path(root)
    cells_a, cells_b = np.arange(n_cells), np.arange(n_cells, 2 * n_cells)
    bc_a = list(a.obs_names[cells_a])
    bc_b = list(a.obs_names[cells_b])
    bc_b[:n_shared_barcodes] = bc_a[:n_shared_barcodes]
    dup_syms = list(syms)
    dup_syms[10], dup_syms[11] = dup_syms[12], dup_syms[12]   # three genes called like gene 12 in donorA
    write_10x(root / "donorA" / "outs" / "filtered_feature_bc_matrix", x[cells_a][:, genes], bc_a, ids, dup_syms)
    write_10x(root / "donorB" / "outs" / "filtered_feature_bc_matrix", x[cells_b][:, genes], bc_b, ids, syms)
    return {"folders": {"donorA": root / "donorA" / "outs" / "filtered_feature_bc_matrix",
                        "donorB": root / "donorB" / "outs" / "filtered_feature_bc_matrix"},
            "duplicated_symbol": dup_syms[12], "n_shared_barcodes": n_shared_barcodes, "n_cells": n_cells}


def write_sheet(path, rows, header=("sample", "path", "batch", "condition")) -> Path:
    """A sample sheet (TSV) with ``header`` and ``rows`` (tuples of strings)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path
