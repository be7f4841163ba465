"""The preprocess step block by block (issue 19): an .h5ad streamed from the file in blocks of cells gives the
output of the whole matrix in memory, to the bit; the per-gene statistics of blocks equal those of the whole
(scanpy's highly variable genes, LIGER's moments); the traced peak memory stays below one copy of the counts."""

from __future__ import annotations

import tracemalloc

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import run_cli
from scfactor.preprocess import counts as blocks
from scfactor.preprocess import genes
from scfactor.preprocess.cli import preprocess
from scfactor.preprocess.contract import compare_preprocessed


def simulated(path, n=240, p=60, seed=0, store="csr"):
    """Two unequal batches of Poisson counts with a few empty cells, an undetected gene and a mitochondrial gene;
    obsm / varm / uns to carry over. ``store``: the counts as CSR ``X``, dense ``X``, or ``layers['counts']``
    beside a normalised ``X``."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(rng.gamma(0.6, 2.0, size=(1, p)) * rng.lognormal(0, 0.5, size=(n, 1))).astype(np.int32)
    x[:, 7] = 0
    x[[3, 50, 151]] = 0
    obs = pd.DataFrame({"cond": np.where(np.arange(n) < 150, "a", "b"), "cell_type": rng.choice(["t", "b"], n)},
                       index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"g{j}" for j in range(p - 1)] + ["MT-1"])
    a = ad.AnnData(sp.csr_matrix(x), obs=obs, var=var, obsm={"emb": rng.normal(size=(n, 3))},
                   varm={"load": rng.normal(size=(p, 2))}, uns={"origin": "test"})
    if store == "dense":
        a.X = x
    elif store == "layer":
        a.layers["counts"] = a.X
        a.X = sp.csr_matrix(x / 3.0)
    a.write_h5ad(path)
    return path


def run(tmp_path, monkeypatch, inp, name, chunk, stream=True, extra=()):
    """Run the step with ``chunk`` cells per block, from the file (``stream``) or from the matrix in memory."""
    monkeypatch.setattr(blocks, "CHUNK_CELLS", chunk)
    if not stream:
        monkeypatch.setattr(blocks, "open_h5ad", lambda *a: None)
    out = [tmp_path / name / "p.h5ad", tmp_path / name / "qc.tsv", tmp_path / name / "qc.png"]
    proc = run_cli(preprocess, "--input", inp, "--output", out[0], "--qc-table", out[1], "--qc-figure", out[2],
                   "--batch-key", "cond", "--label-key", "cell_type", "--n-hvg", 12, "--min-cells", 3, *extra)
    assert proc.returncode == 0, proc.stderr
    assert ("counts read from the file in blocks" in proc.stderr) == stream, proc.stderr
    monkeypatch.undo()
    return ad.read_h5ad(out[0]), pd.read_csv(out[1], sep="\t")


@pytest.mark.parametrize("store, extra", [("csr", ()), ("dense", ("--max-cells-per-batch", 70, "--max-pct-mito", 30)),
                                          ("layer", ("--layer", "counts"))])
def test_blocks_give_the_whole_matrix_output(tmp_path, monkeypatch, store, extra):
    """Streamed from the file in blocks of 17 cells (not aligned with the batches) = the whole matrix in memory
    in one block: X, counts, obs, var, obsm, varm, uns and the QC table."""
    inp = simulated(tmp_path / "in.h5ad", store=store)
    whole, qc_whole = run(tmp_path, monkeypatch, inp, "whole", 10**9, stream=False, extra=extra)
    streamed, qc_streamed = run(tmp_path, monkeypatch, inp, "streamed", 17, extra=extra)
    assert compare_preprocessed(whole, streamed) == dict.fromkeys(compare_preprocessed(whole, whole), True)
    pd.testing.assert_frame_equal(qc_whole, qc_streamed)
    assert 0 < whole.var["highly_variable"].sum() <= 12 < whole.n_vars  # a real choice among the genes
    assert 0 < whole.var["liger_selected"].sum() < whole.n_vars
    assert "g7" not in whole.var_names and whole.n_obs < 240


def test_gene_flags_equal_scanpy_and_whole_liger(tmp_path, monkeypatch):
    """The flags of the streamed output equal scanpy's highly_variable_genes and `liger_select_union` on the
    output's whole matrices (the step's computations before issue 19)."""
    import scanpy as sc
    streamed, _ = run(tmp_path, monkeypatch, simulated(tmp_path / "in.h5ad", seed=1), "streamed", 13)
    hvg = sc.pp.highly_variable_genes(streamed, n_top_genes=12, batch_key="batch", inplace=False)
    np.testing.assert_array_equal(streamed.var["highly_variable"].to_numpy(), hvg["highly_variable"].to_numpy())
    one = streamed[streamed.obs["batch"] == "a"].copy()
    moments = genes.SeuratMoments(one.n_vars)
    for a in range(0, one.n_obs, 29):
        moments.add(one.X[a:a + 29])
    np.testing.assert_array_equal(genes.seurat_hvg({"a": moments}, one.var_names, 12),
                                  sc.pp.highly_variable_genes(one, n_top_genes=12, inplace=False)["highly_variable"])
    batches = streamed.obs["batch"].to_numpy()
    np.testing.assert_array_equal(streamed.var["liger_selected"].to_numpy(),
                                  genes.liger_select_union(streamed.layers["counts"], batches))


def test_liger_moments_of_blocks_equal_the_whole():
    """Block sums continue the whole matrix's sequential sums: mean and variance equal `sparse_mean_var` exactly."""
    x = sp.random(500, 40, density=0.3, random_state=0, format="csr", data_rvs=lambda m: np.arange(1, m + 1) % 9 + 1)
    lib = np.asarray(x.sum(axis=1)).ravel()
    x = x[lib > 0]
    acc = genes.LigerMoments(40)
    for a in range(0, x.shape[0], 33):
        acc.add(x[a:a + 33])
    mean, var = genes.sparse_mean_var(x, row_scale=1.0 / np.asarray(x.sum(axis=1, dtype=np.float64)).ravel())
    n = acc.n_cells
    np.testing.assert_array_equal(acc.sums / n, mean)
    np.testing.assert_array_equal(np.maximum((acc.squares / n - (acc.sums / n) ** 2) * n / (n - 1), 0), var)


def test_streamed_peak_memory_is_below_one_copy_of_the_counts(tmp_path, monkeypatch):
    """Traced peak of the step on 3000 cells x 400 genes in blocks of 300 cells: below one int32 CSR copy of
    the counts (the in-memory step held several: counts, their float32 copy, per-batch subsets)."""
    rng = np.random.default_rng(0)
    n, p = 2000, 500
    x = sp.csr_matrix(rng.poisson(2.0, size=(n, p)).astype(np.int32))
    path = tmp_path / "big.h5ad"
    ad.AnnData(x, obs=pd.DataFrame({"cond": np.repeat(["a", "b"], n // 2)}, index=[f"c{i}" for i in range(n)]),
               var=pd.DataFrame(index=[f"g{j}" for j in range(p)])).write_h5ad(path)
    monkeypatch.setattr(blocks, "CHUNK_CELLS", 100)
    args = ["--input", path, "--batch-key", "cond", "--n-hvg", 50]
    out = lambda name: ["--output", tmp_path / name / "p.h5ad", "--qc-table", tmp_path / name / "q.tsv",  # noqa: E731
                        "--qc-figure", tmp_path / name / "q.png"]
    assert run_cli(preprocess, *args, *out("warm")).returncode == 0  # imports, compiled kernels, fonts
    tracemalloc.start()
    try:
        proc = run_cli(preprocess, *args, *out("traced"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert proc.returncode == 0, proc.stderr
    one_copy = x.nnz * 8 + (n + 1) * 4
    assert peak < one_copy, (peak, one_copy)


def test_seurat_moments_of_blocks_equal_scanpy():
    """Mean and variance of expm1(X) from blocks of 33 cells equal scanpy's `_get_mean_var` of the whole, exactly."""
    from scanpy.preprocessing._utils import _get_mean_var
    x = sp.random(500, 40, density=0.3, random_state=1, format="csr", dtype=np.float32)
    acc = genes.SeuratMoments(40)
    for a in range(0, 500, 33):
        acc.add(x[a:a + 33])
    for got, want in zip(acc.mean_var(), _get_mean_var(np.expm1(x))):
        np.testing.assert_array_equal(got, want)
