"""Resource requests that grow with a step's cells (`scfactor.core.requests`, the rules' `by_cells`)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scfactor.core.requests import input_cells, scaled_request


def write_cells(path, n: int):
    """An .h5ad of ``n`` cells (one empty gene): only its obs is read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ad.AnnData(X=sp.csr_matrix((n, 1), dtype=np.float32),
               obs=pd.DataFrame(index=[f"c{i}" for i in range(n)])).write_h5ad(path)
    return path


def test_cells_of_one_or_several_files(tmp_path):
    a, b = write_cells(tmp_path / "a.h5ad", 1200), write_cells(tmp_path / "b.h5ad", 300)
    assert input_cells(a) == 1200 and input_cells(str(a)) == 1200
    assert input_cells([a, b]) == 1500
    assert input_cells([a, tmp_path / "not_made_yet.h5ad"]) is None
    (tmp_path / "bad.h5ad").write_text("not hdf5")
    assert input_cells(tmp_path / "bad.h5ad") is None


def test_request_grows_with_cells_and_attempt(tmp_path):
    a = write_cells(tmp_path / "a.h5ad", 250_000)
    assert scaled_request(4000, 15, a) == 4000 + 15 * 250
    assert scaled_request(4000, 15, a, attempt=2) == 2 * (4000 + 15 * 250)
    assert scaled_request(30, 0.06, a) == 45                    # minutes: 30 + 0.06 x 250
    assert scaled_request(4000, 15, tmp_path / "missing.h5ad", attempt=2) == 8000
