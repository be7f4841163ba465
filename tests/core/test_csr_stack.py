"""`scfactor.core.csr_stack`: blocks stacked as scipy's vstack stacks them (grown in place), row blocks by entries."""

import numpy as np
import pytest
import scipy.sparse as sp

from scfactor.core import csr_stack
from scfactor.core.csr_stack import stack_rows


def _blocks(seed=0, n=30, cols=17):
    rng = np.random.default_rng(seed)
    blocks = [sp.random(int(rng.integers(0, 40)), cols, density=0.3, format="csr", random_state=i,
                        dtype=np.float64) for i in range(n)]
    blocks[2].data[:3] = 0.0  # explicit zeros stay, as in vstack
    messy = sp.csr_matrix((np.array([1.0, 2.0, 3.0]), np.array([5, 1, 5]), np.array([0, 3])), shape=(1, cols))
    return blocks + [messy]  # unsorted and duplicate columns stay too


@pytest.mark.parametrize("first", [1, 7, 1 << 16])
def test_stack_equals_vstack(monkeypatch, first):
    """Values, column indices and row pointers equal vstack's for every starting capacity (how often it grows)."""
    monkeypatch.setattr(csr_stack, "_FIRST_CAPACITY", first)
    blocks = _blocks()
    got = stack_rows(iter(blocks), 17, np.float32)
    want = sp.vstack(blocks, format="csr")
    assert got.shape == want.shape and got.dtype == np.float32 and got.indices.dtype == np.int32
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data.astype(np.float32))
    assert got.data.size == got.nnz  # shrunk to the entries


def test_stack_of_nothing_and_wrong_width():
    """No block: a matrix with no rows; a block of another width is refused."""
    empty = stack_rows([], 5, np.float32)
    assert empty.shape == (0, 5) and empty.nnz == 0
    with pytest.raises(ValueError, match="4 columns, not 5"):
        stack_rows([sp.csr_matrix((2, 5)), sp.csr_matrix((1, 4))], 5, np.float32)


def test_row_blocks_cover_every_row_within_the_entry_budget():
    """Consecutive ranges over all rows (empty rows included); a row above the budget stands alone."""
    from scfactor.core.csr_stack import row_blocks
    lengths = np.array([0, 3, 2, 0, 9, 1, 1, 0, 4])
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    blocks = list(row_blocks(indptr, 4))
    assert blocks[0][0] == 0 and blocks[-1][1] == len(lengths)
    assert all(b0[1] == b1[0] for b0, b1 in zip(blocks, blocks[1:]))
    for a, b in blocks:
        assert b > a and (indptr[b] - indptr[a] <= 4 or b == a + 1)
    assert (4, 5) in blocks  # the 9-entry row alone
    assert list(row_blocks(np.zeros(1, dtype=int), 4)) == []


@pytest.mark.parametrize("entries", [1, 5, 1 << 22])
def test_row_sums_equal_scipy_block_by_block(entries):
    """`row_sums` gives scipy's ``sum(axis=1)`` exactly (int32 counts: int64 sums; float32 values summed in float64
    when asked), whatever the block size, empty rows and an empty matrix included."""
    from scfactor.core.csr_stack import row_sums
    rng = np.random.default_rng(1)
    counts = sp.random(50, 20, density=0.3, format="csr", random_state=2, dtype=np.float64)
    counts.data = rng.integers(1, 10 ** 6, size=counts.nnz).astype(np.int32)
    counts = sp.csr_matrix(counts)
    counts[7] = 0
    got = row_sums(counts, entries=entries)
    assert got.dtype == np.int64 and np.array_equal(got, np.asarray(counts.sum(axis=1)).ravel())
    values = counts.astype(np.float32)
    values.data *= rng.random(values.nnz, dtype=np.float32)
    got = row_sums(values, dtype=np.float64, entries=entries)
    assert np.array_equal(got, np.asarray(values.sum(axis=1, dtype=np.float64)).ravel())
    assert row_sums(counts[:0], entries=entries).shape == (0,)
