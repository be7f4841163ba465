"""The minibatch fit's row sources: `stream.SpooledRows` (an uncompressed scratch copy) reads exactly what
`stream.CountRows` (the ``.h5ad``) reads, for any row range and gene selection; `stream.spool` falls back to
the file when no scratch file can be written; the scratch files have no name and vanish on close."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import scipy.sparse as sp

from scfactor.core import io
from scfactor.core.errors import InputError
from scfactor.layers import stream
from scfactor.layers.cli import SIMULATE
from scfactor.layers.simulate import simulate, to_anndata


def _h5ad(tmp_path, dense: bool, hvg_every: int = 3):
    adata = to_anndata(simulate(SIMULATE.defaults(n_cells=530, n_genes=90, n_factors=3, seed=7)))
    adata.layers["counts"] = adata.X.toarray() if dense else sp.csr_matrix(adata.X)
    adata.var["highly_variable"] = np.arange(adata.n_vars) % hvg_every == 0
    path = tmp_path / f"{'dense' if dense else 'csr'}.h5ad"
    io.write_h5ad(adata, path)
    return path


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("genes", ["all", "hvg"])
def test_spooled_rows_read_what_the_file_reads(tmp_path, monkeypatch, dense, genes):
    monkeypatch.setattr(stream, "SPOOL_ROWS", 64)  # several spooling blocks, one ending mid-file
    src = stream.CountRows(_h5ad(tmp_path, dense), "counts", genes)
    rows = stream.SpooledRows(src, tmp_path)
    try:
        assert rows.shape == src.shape and rows.shape[1] == (90 if genes == "all" else 30)
        assert os.listdir(tmp_path) == [f"{'dense' if dense else 'csr'}.h5ad"]  # the scratch files have no name
        for a, b in [(0, 530), (0, 1), (63, 65), (100, 164), (529, 530), (200, 200)]:
            got, want = rows.read(a, b), src.read(a, b)
            assert got.dtype == np.float32 and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
    finally:
        rows.close()
        src.close()


def test_spooling_checks_every_value(tmp_path):
    adata = to_anndata(simulate(SIMULATE.defaults(n_cells=300, n_genes=40, n_factors=3, seed=1)))
    x = adata.X.toarray().astype(np.float32)
    x[250, 3] = np.nan
    adata.layers["counts"] = sp.csr_matrix(x)
    path = tmp_path / "nan.h5ad"
    io.write_h5ad(adata, path)
    src = stream.CountRows(path, "counts", "all")
    with pytest.raises(InputError, match="NaN"):
        stream.SpooledRows(src)
    src.close()


def test_spool_falls_back_to_the_file_when_scratch_cannot_be_written(tmp_path, caplog):
    src = stream.CountRows(_h5ad(tmp_path, dense=False), "counts", "all")
    with caplog.at_level(logging.WARNING):
        got = stream.spool(src, tmp_path / "no" / "such" / "dir")
    assert got is src and "reading" in caplog.text and "directly" in caplog.text
    spooled = stream.spool(src, tmp_path)
    assert isinstance(spooled, stream.SpooledRows)
    np.testing.assert_array_equal(spooled.read(10, 90), src.read(10, 90))
    spooled.close()
    src.close()
