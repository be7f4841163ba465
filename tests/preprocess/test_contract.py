"""The preprocessed file's count matrix read block by block (`scfactor.preprocess.contract.load_counts`, issue 19):
the counts, cells and genes of the whole read (`load_preprocessed`), in the file's dtype or the one asked for; files
that cannot be streamed give the same through the whole read; other layers and a ``raw`` section are left in the
file; bad counts give the whole read's one-line error."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scfactor.core.errors import InputError
from scfactor.preprocess import contract
from scfactor.preprocess import counts as counts_io


def _preprocessed(path, n=90, p=30, seed=0, kind="plain"):
    """A preprocessed-style file: int32 counts in ``layers['counts']``, a log-normalised ``X``, two batches, LIGER
    flags, an ``obsm`` entry. ``kind`` ``extra``: a ``raw`` section and two more layers too (a user's file, still
    streamed); ``csc``: the counts stored CSC (a file that cannot be streamed)."""
    rng = np.random.default_rng(seed)
    x = sp.csr_matrix(rng.poisson(rng.gamma(0.6, 2.0, size=(n, p))).astype(np.int32))
    a = ad.AnnData(X=sp.csr_matrix(np.log1p(x.toarray()).astype(np.float32)),
                   obs=pd.DataFrame({"batch": pd.Categorical(np.where(np.arange(n) % 3 == 0, "b2", "b1"))},
                                    index=[f"c{i}" for i in range(n)]),
                   var=pd.DataFrame({"liger_selected": np.arange(p) % 4 != 1}, index=[f"g{j}" for j in range(p)]),
                   obsm={"emb": rng.normal(size=(n, 2))})
    a.layers["counts"] = sp.csc_matrix(x) if kind == "csc" else x
    if kind == "extra":
        a.raw = a
        a.layers["spliced"], a.layers["unspliced"] = x.copy(), x.copy()
    a.write_h5ad(path)
    return path


@pytest.mark.parametrize("kind", ["plain", "extra", "csc"])
def test_load_counts_equals_the_whole_read(tmp_path, monkeypatch, kind):
    inp = _preprocessed(tmp_path / "in.h5ad", kind=kind)
    monkeypatch.setattr(counts_io, "CHUNK_CELLS", 7)  # many input blocks
    ref = contract.load_preprocessed(inp, batch="b1", genes="liger", layer="counts")
    whole_reads, whole_read = [], contract.load_preprocessed
    monkeypatch.setattr(contract, "load_preprocessed", lambda *a, **k: whole_reads.append(1) or whole_read(*a, **k))
    got = contract.load_counts(inp, "b1", "liger", "counts", integer=True)
    assert len(whole_reads) == (kind == "csc")  # only the CSC file is read whole
    assert sp.issparse(got.X) and got.X.format == "csr" and got.X.dtype == np.int32
    assert not got.layers and got.raw is None
    np.testing.assert_array_equal(got.X.toarray(), ref.X.toarray())
    pd.testing.assert_frame_equal(got.obs, ref.obs)
    pd.testing.assert_frame_equal(got.var, ref.var)
    np.testing.assert_array_equal(got.obsm["emb"], ref.obsm["emb"])
    as_float = contract.load_counts(inp, "b1", "liger", "counts", integer=True, dtype=np.float32)
    assert as_float.X.dtype == np.float32 and not as_float.layers
    np.testing.assert_array_equal(as_float.X.toarray(), ref.X.toarray())


@pytest.mark.parametrize("bad, problem", [(0.5, "non-integer"), (np.nan, "NaN"), (-1.0, "negative")])
def test_load_counts_bad_values_give_the_whole_read_error(tmp_path, monkeypatch, bad, problem):
    """A bad value in a late block: the one-line error of `load_preprocessed`, word for word."""
    inp = _preprocessed(tmp_path / "in.h5ad")
    a = ad.read_h5ad(inp)
    counts = a.layers["counts"].astype(np.float32)
    counts.data[-1] = bad
    a.layers["counts"] = counts
    a.write_h5ad(inp)
    monkeypatch.setattr(counts_io, "CHUNK_CELLS", 7)
    with pytest.raises(InputError) as whole:
        contract.load_preprocessed(inp, layer="counts")
    with pytest.raises(InputError) as streamed:
        contract.load_counts(inp, layer="counts")
    assert str(streamed.value) == str(whole.value) and problem in str(streamed.value) and str(inp) in str(whole.value)


def test_load_counts_missing_file_and_batch(tmp_path):
    with pytest.raises(InputError, match="does not exist|not found|no such"):
        contract.load_counts(tmp_path / "nope.h5ad")
    inp = _preprocessed(tmp_path / "in.h5ad")
    with pytest.raises(InputError, match="batch 'b9' has no cells"):
        contract.load_counts(inp, batch="b9")
