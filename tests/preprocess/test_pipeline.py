"""The preprocess script: contract of its output and one-line failures on bad inputs."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import assert_clean_failure, run_cli
from scfactor.preprocess.cli import preprocess


def write_counts(path, x, batches=None, obs_names=None, var_names=None, dtype=None):
    x = np.asarray(x)
    n, p = x.shape
    obs = pd.DataFrame(index=obs_names or [f"c{i}" for i in range(n)])
    if batches is not None:
        obs["cond"] = batches
    var = pd.DataFrame(index=var_names or ([f"g{j}" for j in range(p - 1)] + ["MT-1"] if p else []))
    a = ad.AnnData(sp.csr_matrix(x.astype(dtype or x.dtype)) if n and p else x, obs=obs, var=var)
    a.write_h5ad(path)
    return path


def outputs(tmp_path):
    return [tmp_path / "out" / "p.h5ad", tmp_path / "out" / "qc.tsv", tmp_path / "out" / "qc.png"]


def run_pp(tmp_path, inp, *extra):
    out = outputs(tmp_path)
    return run_cli(preprocess, "--input", inp, "--output", out[0], "--qc-table", out[1],
                      "--qc-figure", out[2], "--n-hvg", 5, *extra), out


def good_counts(seed=0, n=40, p=12):
    rng = np.random.default_rng(seed)
    x = rng.poisson(3.0, size=(n, p)).astype(np.int32)
    x[:, 0] = 0  # a gene with no counts anywhere: dropped
    x[3] = 0      # a cell with no counts: dropped
    return x


def test_output_contract(tmp_path):
    x = good_counts()
    inp = write_counts(tmp_path / "in.h5ad", x, batches=["a"] * 20 + ["b"] * 20)
    proc, out = run_pp(tmp_path, inp, "--batch-key", "cond", "--batches", "b", "a")
    assert proc.returncode == 0, proc.stderr
    a = ad.read_h5ad(out[0])
    assert a.n_obs == 39 and a.n_vars == 11
    assert list(a.obs["batch"].cat.categories) == ["b", "a"]
    counts = a.layers["counts"].toarray()
    np.testing.assert_array_equal(counts, np.delete(np.delete(x, 3, axis=0), 0, axis=1))
    lib = counts.sum(1, keepdims=True)
    np.testing.assert_allclose(a.X.toarray(), np.log1p(counts / lib * 1e4), rtol=1e-5)
    assert {"liger_selected", "highly_variable", "n_cells_a", "n_cells_b"} <= set(a.var.columns)
    assert a.var["highly_variable"].sum() == 5
    qc = pd.read_csv(out[1], sep="\t")
    assert qc.set_index("batch").loc["a", "cells_kept"] == 19
    assert out[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_deterministic_subsample(tmp_path):
    x = good_counts(n=60)
    inp = write_counts(tmp_path / "in.h5ad", x, batches=["a"] * 30 + ["b"] * 30)
    p1, out = run_pp(tmp_path, inp, "--batch-key", "cond", "--max-cells-per-batch", 10, "--seed", 3)
    first = ad.read_h5ad(out[0]).obs_names.tolist()
    p2, out = run_pp(tmp_path, inp, "--batch-key", "cond", "--max-cells-per-batch", 10, "--seed", 3)
    assert p1.returncode == 0 and p2.returncode == 0
    assert ad.read_h5ad(out[0]).obs_names.tolist() == first and len(first) <= 20


@pytest.mark.parametrize("case", ["missing", "unreadable", "non_integer", "negative", "nan",
                                  "dup_cells", "dup_genes", "empty_batch", "gene_list", "empty"])
def test_bad_inputs_fail_cleanly(tmp_path, case):
    x = good_counts().astype(float)
    inp = tmp_path / "in.h5ad"
    extra = []
    if case == "missing":
        inp = tmp_path / "absent.h5ad"
    elif case == "unreadable":
        inp.write_bytes(b"\x00garbage")
    elif case == "non_integer":
        x[1, 1] = 2.5
        write_counts(inp, x)
    elif case == "negative":
        x[1, 1] = -1
        write_counts(inp, x)
    elif case == "nan":
        x[1, 1] = np.nan
        write_counts(inp, x)
    elif case == "dup_cells":
        write_counts(inp, x, obs_names=["c0"] * 2 + [f"c{i}" for i in range(2, 40)])
    elif case == "dup_genes":
        write_counts(inp, x, var_names=["g0"] * 2 + [f"g{i}" for i in range(2, 12)])
    elif case == "empty_batch":
        write_counts(inp, x, batches=["a"] * 40)
        extra = ["--batch-key", "cond", "--batches", "a", "b"]
    elif case == "gene_list":
        write_counts(inp, x)
        (tmp_path / "genes.txt").write_text("NOPE1\nNOPE2\n")
        extra = ["--gene-list", tmp_path / "genes.txt"]
    elif case == "empty":
        write_counts(inp, np.zeros((0, 0)))
    proc, out = run_pp(tmp_path, inp, *extra)
    mentions = str(tmp_path / "genes.txt") if case == "gene_list" else str(inp)
    assert_clean_failure(proc, mentions=mentions, outputs=out)
    if case == "dup_cells":
        assert "Give the samples in a sample sheet" in proc.stderr


def droplets(seed=0, n_cells=150, n_empty=1850, p=200):
    """An unfiltered droplet matrix: ``n_cells`` real cells (about 1000 counts each) among ``n_empty`` barcodes of
    a few ambient counts each (Cell Ranger's raw_feature_bc_matrix, in small)."""
    rng = np.random.default_rng(seed)
    profile = rng.dirichlet(np.full(p, 0.5))
    depth = np.r_[rng.integers(600, 1500, n_cells), rng.integers(1, 8, n_empty)]
    return np.stack([rng.multinomial(d, profile) for d in depth]).astype(np.int32)


def test_unfiltered_droplets_fail_with_the_fix(tmp_path):
    """2000 barcodes, median 4 counts: one line naming the input, the batch and the fixes, no output; raising
    min_counts keeps the real cells; min_median_counts 0 turns the check off."""
    inp = write_counts(tmp_path / "raw.h5ad", droplets())
    proc, out = run_pp(tmp_path, inp)
    assert_clean_failure(proc, mentions=str(inp), outputs=out)
    assert "unfiltered droplet matrix" in proc.stderr and "keeps 2000 cells" in proc.stderr
    proc, out = run_pp(tmp_path, inp, "--min-counts", 100)
    assert proc.returncode == 0, proc.stderr
    assert ad.read_h5ad(out[0]).n_obs == 150
    proc, out = run_pp(tmp_path, inp, "--min-median-counts", 0)
    assert proc.returncode == 0, proc.stderr
    assert ad.read_h5ad(out[0]).n_obs == 2000
