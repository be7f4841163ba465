"""The training matrix on disk (`scfactor.densify.spill`, issue 19): it reads back as the scipy matrix it was
written from, fingerprints the same, leaves no file behind, fails in one line on a full disk; the held-out
entries are hidden chunk by chunk whatever the blocks; the streamed SVD is sklearn's; and a densify run with its
training matrix on disk writes the same output, bit for bit, as one with it in memory, while its traced memory
stays under the counts'."""

from __future__ import annotations

import errno
import os
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from densify.data import densify_args, planted_counts, write_preprocessed
from scfactor.core import checkpoint
from scfactor.core.errors import ScfactorError
from scfactor.densify import heldout, spill


def _spilled(x, entries=97, in_memory_max=0, directory=None):
    x = heldout.canonical(sp.csr_matrix(x, dtype=np.float32))
    return x, spill.SpilledCSR.write((b for _, _, b in spill.row_chunks(x, entries)), x.shape[1],
                                     directory=directory, in_memory_max=in_memory_max)


def _same(a, b):
    return (a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.data, b.data)
            and np.array_equal(a.indices, b.indices) and np.array_equal(a.indptr, b.indptr))


@pytest.mark.parametrize("in_memory_max", [0, 1 << 30])
def test_spilled_rows_read_back_as_the_matrix(in_memory_max):
    x, s = _spilled(planted_counts(120, 40)[0], in_memory_max=in_memory_max)
    assert s.in_memory == bool(in_memory_max) and s.shape == x.shape and s.nnz == x.nnz
    rng = np.random.default_rng(0)
    for rows in (rng.permutation(120)[:37], np.array([5, 5, 0, 119]), np.array([], dtype=np.int64)):
        assert _same(s[rows], x[rows])
    for a, b in ((0, 120), (17, 18), (30, 30), (100, 500)):
        assert _same(s[a:b], x[a:b])
    assert checkpoint.fingerprint(s, settings={"k": 1}) == checkpoint.fingerprint(x, settings={"k": 1})
    assert checkpoint.fingerprint(s, settings={"k": 1}) != checkpoint.fingerprint(x[:-1], settings={"k": 1})


def test_spilled_files_are_gone_and_a_full_disk_is_one_line(tmp_path, monkeypatch):
    _, s = _spilled(planted_counts(50, 20)[0], directory=tmp_path)
    assert list(tmp_path.iterdir()) == []  # unlinked at once: nothing left, even by a killed job
    assert s[0:50].nnz == s.nnz
    s.close()

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(spill.os, "write", full)
    with pytest.raises(ScfactorError, match=f"cannot write the training matrix to {tmp_path}: No space left"):
        _spilled(planted_counts(50, 20)[0], directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("frac", [0.1, 0.5])
def test_hidden_entries_do_not_depend_on_the_blocks(monkeypatch, frac):
    """Chunks of 64 entries: each hides round(frac * its size); the same entries for any block size and for the
    matrix on disk; the first chunk hides what one draw over a matrix of at most a chunk hides."""
    monkeypatch.setattr(heldout, "HIDE_CHUNK", 64)
    x, _ = planted_counts(90, 30)
    x = sp.csr_matrix(x, dtype=np.float32)
    ref_train, ref = heldout.mask_nonzeros(x, frac, seed=2)
    keys = x.tocoo()
    entry = {(r, c): k for k, (r, c) in enumerate(zip(keys.row, keys.col))}
    hidden = np.array([entry[(r, c)] for r, c in zip(ref.rows, ref.cols)])
    sizes = np.minimum(64, x.nnz - np.arange(0, x.nnz, 64))
    np.testing.assert_array_equal(np.bincount(hidden // 64, minlength=len(sizes)), np.round(frac * sizes))
    for entries in (1, 50, 10_000):
        _, s = _spilled(x, entries=entries)
        held = heldout.hidden_entries(s.nnz, frac, s.shape)
        train = spill.SpilledCSR.write((b for _, _, b in heldout.masked_blocks(s, frac, 2, held)), x.shape[1])
        for a in ("rows", "cols", "values"):
            np.testing.assert_array_equal(getattr(held, a), getattr(ref, a))
        assert _same(train[0:x.shape[0]], ref_train)
    small = sp.csr_matrix(x[:2], dtype=np.float32)
    assert small.nnz <= 64
    _, held = heldout.mask_nonzeros(small, frac, seed=2)
    draw = np.sort(np.random.default_rng(2).choice(small.nnz, size=round(frac * small.nnz), replace=False))
    c = small.tocoo()
    np.testing.assert_array_equal(held.rows, c.row[draw])
    np.testing.assert_array_equal(held.cols, c.col[draw])


def test_streamed_svd_is_sklearns():
    from sklearn.utils.extmath import randomized_svd as sklearn_svd

    from scfactor.densify.rsvd import randomized_svd
    for shape in ((300, 80), (60, 90)):  # the narrow side transposed as sklearn does
        x = sp.csr_matrix(planted_counts(*shape)[0], dtype=np.float32)
        lx = sp.csr_matrix((np.log1p(x.data, dtype=np.float64), x.indices, x.indptr), shape=x.shape)
        want = sklearn_svd(lx, n_components=5, random_state=4)
        log1p = lambda v: np.log1p(v, dtype=np.float64)  # noqa: E731
        one_block = randomized_svd(x, 5, 4, transform=log1p)
        for w, g in zip(want, one_block):
            np.testing.assert_array_equal(w, g)
        _, s = _spilled(x)
        blocks = randomized_svd(s, 5, 4, transform=log1p, entries=100)
        np.testing.assert_allclose(blocks[0] * blocks[1] @ blocks[2], want[0] * want[1] @ want[2], atol=1e-10)


def test_densify_with_the_training_matrix_on_disk_writes_the_same_output(tmp_path, monkeypatch):
    import anndata as ad

    from scfactor.densify.cli import densify
    inp = write_preprocessed(tmp_path / "in.h5ad", planted_counts(150, 40)[0])
    for where, limit in (("mem", 1 << 30), ("disk", 0)):
        monkeypatch.setattr(spill, "IN_MEMORY_MAX", limit)
        (tmp_path / where).mkdir()
        assert densify([str(a) for a in densify_args(inp, tmp_path / where)]) == 0
    assert (tmp_path / "mem/out.tsv").read_bytes() == (tmp_path / "disk/out.tsv").read_bytes()
    a, b = ad.read_h5ad(tmp_path / "mem/out.h5ad"), ad.read_h5ad(tmp_path / "disk/out.h5ad")
    np.testing.assert_array_equal(a.layers["neumf"], b.layers["neumf"])
    assert _same(a.layers["counts"], b.layers["counts"]) and _same(a.X, b.X)
    np.testing.assert_array_equal(a.uns["neumf"]["heldout_rows"], b.uns["neumf"]["heldout_rows"])


def test_reading_and_masking_hold_no_copy_of_the_counts(tmp_path, monkeypatch):
    """Traced peak of reading 5,000 cells x 800 genes (about 400,000 counts, 3.2 MB as float32 CSR) and hiding a
    tenth of them with the training matrix on disk: under half the counts' size (the hidden entries, 12 bytes
    each, about 0.5 MB, the obs / var tables, the row pointers and one block: 1.5 MB measured), where holding the
    counts in memory would take 3.2 MB besides all that."""
    from scfactor.densify.cli import DENSIFY
    from scfactor.densify.pipeline import validate_input
    from scfactor.preprocess import counts as counts_io
    rng = np.random.default_rng(0)
    x = sp.random(5_000, 800, density=0.1, format="csr", random_state=rng, data_rvs=lambda k: rng.integers(1, 9, k))
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    monkeypatch.setattr(counts_io, "CHUNK_CELLS", 250)
    monkeypatch.setattr(heldout, "HIDE_CHUNK", 1 << 14)
    monkeypatch.setattr(spill, "CHUNK_ENTRIES", 1 << 14)
    monkeypatch.setattr(spill, "IN_MEMORY_MAX", 0)
    opts = DENSIFY.defaults(genes="all")
    tracemalloc.start()
    data = validate_input(inp, "b1", opts)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    counts_bytes = x.nnz * 8
    assert not data.train.in_memory and data.train.nnz + len(data.held) == x.nnz
    assert peak < 0.5 * counts_bytes, (peak, counts_bytes)
