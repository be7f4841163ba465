"""An ``.h5ad`` whose chosen matrix holds no counts: the error names the matrix of the file that does
(`scfactor.preprocess.layer_hint`), in one line, with no output left."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import assert_clean_failure, run_cli
from scfactor.preprocess.cli import preprocess
from tenx import symbols, synthetic_counts


def _scanpy_style(path, where: str):
    """Log-normalised ``X`` (a scanpy workflow's file); the counts in ``where``: a layer, ``raw``, ``X`` (then the
    layer ``counts`` holds the log-normalised values) or nowhere."""
    counts = sp.csr_matrix(synthetic_counts(60, 15, 0))
    lognorm = counts.multiply(1e4 / counts.sum(axis=1)).tocsr().log1p().astype(np.float32)
    a = ad.AnnData(lognorm, obs=pd.DataFrame(index=[f"c{i}" for i in range(60)]),
                   var=pd.DataFrame(index=symbols(15)))
    if where == "raw":
        a.raw = ad.AnnData(counts.astype(np.float32), obs=a.obs, var=a.var)
    elif where == "X":
        a.X, a.layers["counts"] = counts, lognorm
    elif where == "layer":
        a.layers["umi"] = counts
    a.write_h5ad(path)
    return path


@pytest.mark.parametrize("where, hint", [
    ("layer", "layers['umi'] holds counts: set layer: umi"),
    ("raw", "raw.X holds counts: store them as a layer"),
    ("X", "X holds counts: set layer: X"),
    ("nowhere", None)])
def test_the_error_names_the_matrix_that_holds_counts(tmp_path, where, hint):
    inp = _scanpy_style(tmp_path / "in.h5ad", where)
    out = [tmp_path / "o" / "p.h5ad", tmp_path / "o" / "qc.tsv", tmp_path / "o" / "qc.png"]
    layer = ["--layer", "counts"] if where == "X" else []
    proc = run_cli(preprocess, "--input", inp, "--output", out[0], "--qc-table", out[1], "--qc-figure", out[2],
                   *layer)
    assert_clean_failure(proc, mentions=f"{inp}: {'counts' if where == 'X' else 'X'} has", outputs=out)
    if hint:
        assert hint in proc.stderr
    else:
        assert proc.stderr.rstrip().endswith("non-integer values; raw counts are required")
