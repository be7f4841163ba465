"""Readers and input validation (`scfactor.io`)."""

from __future__ import annotations

import gzip

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from scfactor.core import io
from scfactor.preprocess import contract
from scfactor.core.errors import InputError


def counts_matrix(n=6, p=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.poisson(2.0, size=(n, p)).astype(np.int32)


def names(n, prefix):
    return [f"{prefix}{i}" for i in range(n)]


def test_read_h5ad_roundtrip(tmp_path):
    x = counts_matrix()
    a = ad.AnnData(sp.csr_matrix(x), obs=pd.DataFrame(index=names(6, "c")), var=pd.DataFrame(index=names(5, "g")))
    a.write_h5ad(tmp_path / "a.h5ad")
    b = io.read_counts(tmp_path / "a.h5ad")
    assert sp.issparse(b.X)
    np.testing.assert_array_equal(b.X.toarray(), x)
    assert list(b.var_names) == names(5, "g")


def test_read_wide_csv_genes_as_rows(tmp_path):
    x = counts_matrix()
    df = pd.DataFrame(x.T, index=pd.Index(names(5, "g"), name="gene"), columns=names(6, "c"))
    df.to_csv(tmp_path / "wide.csv")
    b = io.read_counts(tmp_path / "wide.csv")
    assert b.shape == (6, 5)
    np.testing.assert_array_equal(b.X.toarray(), x)
    assert list(b.obs_names) == names(6, "c")


def test_read_10x_mtx_folder(tmp_path):
    x = counts_matrix()
    d = tmp_path / "tenx"
    d.mkdir()
    with gzip.open(d / "matrix.mtx.gz", "wb") as f:
        scipy.io.mmwrite(f, sp.coo_matrix(x.T))
    with gzip.open(d / "barcodes.tsv.gz", "wt") as f:
        f.write("".join(f"{c}\n" for c in names(6, "AAAC-")))
    with gzip.open(d / "features.tsv.gz", "wt") as f:
        f.write("".join(f"ENSG{i}\t{g}\tGene Expression\n" for i, g in enumerate(names(5, "g"))))
    b = io.read_counts(d)
    assert b.shape == (6, 5)
    np.testing.assert_array_equal(b.X.toarray(), x)
    assert list(b.var_names) == names(5, "g")


def test_read_10x_h5(tmp_path):
    x = counts_matrix()
    csc = sp.csc_matrix(x.T)  # 10x stores genes x cells, CSC over cells
    with h5py.File(tmp_path / "f.h5", "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(names(6, "AAAC-"), dtype="S")
        m["data"], m["indices"], m["indptr"] = csc.data, csc.indices, csc.indptr
        m["shape"] = np.array(csc.shape)
        ft = m.create_group("features")
        ft["id"] = np.array(names(5, "ENSG"), dtype="S")
        ft["name"] = np.array(names(5, "g"), dtype="S")
        ft["feature_type"] = np.array(["Gene Expression"] * 5, dtype="S")
        ft["genome"] = np.array(["GRCh38"] * 5, dtype="S")
    b = io.read_counts(tmp_path / "f.h5")
    assert b.shape == (6, 5)
    np.testing.assert_array_equal(b.X.toarray(), x)


def test_read_neuralnmf_h5(tmp_path):
    x = counts_matrix()
    csr = sp.csr_matrix(x)
    with h5py.File(tmp_path / "sim.h5", "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = names(6, "")
        m["indptr"], m["indices"], m["data"] = csr.indptr, csr.indices, csr.data
        m["shape"] = np.array(x.shape)
        m.create_group("features")["id"] = names(5, "c")
    assert io.detect_format(tmp_path / "sim.h5") == "nnmf_h5"
    b = io.read_counts(tmp_path / "sim.h5")
    np.testing.assert_array_equal(b.X.toarray(), x)
    assert list(b.var_names) == names(5, "c")


def test_missing_and_unreadable(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        io.read_counts(tmp_path / "nope.h5ad")
    (tmp_path / "junk.h5ad").write_text("not hdf5")
    with pytest.raises(InputError, match="cannot read"):
        io.read_counts(tmp_path / "junk.h5ad")


@pytest.mark.parametrize("values, problem", [
    (np.array([[1.0, 2.5], [0.0, 1.0]]), "non-integer"),
    (np.array([[1.0, -2.0], [0.0, 1.0]]), "negative"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
    (np.zeros((0, 3)), "empty"),
])
def test_validate_counts_rejects(values, problem):
    with pytest.raises(InputError, match=problem):
        io.validate_counts(sp.csr_matrix(values) if values.size else values, "f.h5ad")


def test_validate_counts_accepts_float_integers():
    io.validate_counts(sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 3.0]])), "f.h5ad")


def test_duplicated_names():
    a = ad.AnnData(sp.csr_matrix(counts_matrix(3, 2)), obs=pd.DataFrame(index=["a", "a", "b"]),
                   var=pd.DataFrame(index=["g1", "g2"]))
    with pytest.raises(InputError, match=r"duplicated cell names \(first: 'a'\)$"):
        io.validate_names(a, "f.h5ad")
    with pytest.raises(InputError, match="duplicated cell names .*Give the samples in a sample sheet"):
        io.validate_names(a, "f.h5ad", cell_hint=io.JOINED_SAMPLES_HINT)


def test_atomic_output_removes_temp_on_failure(tmp_path):
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError):
        with io.atomic_output(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_load_preprocessed_subsets(tmp_path):
    x = sp.csr_matrix(counts_matrix(6, 4))
    a = ad.AnnData(x.astype(np.float32), obs=pd.DataFrame({"batch": pd.Categorical(list("aaabbb"))},
                                                          index=names(6, "c")),
                   var=pd.DataFrame({"liger_selected": [True, False, True, False],
                                     "highly_variable": [False, True, True, True]}, index=names(4, "g")))
    a.layers["counts"] = x
    a.write_h5ad(tmp_path / "p.h5ad")
    b = contract.load_preprocessed(tmp_path / "p.h5ad", batch="b", genes="liger")
    assert b.shape == (3, 2) and list(b.var_names) == ["g0", "g2"]
    with pytest.raises(InputError, match="batch 'z' has no cells"):
        contract.load_preprocessed(tmp_path / "p.h5ad", batch="z")
    (tmp_path / "genes.txt").write_text("foo\nbar\n")
    with pytest.raises(InputError, match="none of its 2 gene names"):
        contract.load_preprocessed(tmp_path / "p.h5ad", genes=str(tmp_path / "genes.txt"))


def test_10x_readers_keep_symbols_and_ids(tmp_path):
    """Both 10x readers: symbols as names (duplicates kept for set_gene_names), var['symbol'], var['gene_id']."""
    from tenx import write_10x, write_10x_h5
    x, genes = counts_matrix(), ["MT-A", "B", "B", "C", "D"]
    write_10x(tmp_path / "mtx", x, names(6, "AAAC-"), names(5, "ENSG"), genes)
    write_10x_h5(tmp_path / "f.h5", x, names(6, "AAAC-"), names(5, "ENSG"), genes)
    for path in (tmp_path / "mtx", tmp_path / "f.h5"):
        b = io.read_counts(path)
        assert list(b.var_names) == genes and list(b.var["symbol"]) == genes
        assert list(b.var["gene_id"]) == names(5, "ENSG")
        np.testing.assert_array_equal(b.X.toarray(), x)


@pytest.mark.parametrize("columns", [1, 2])
def test_10x_folders_with_short_feature_tables(tmp_path, columns):
    """features.tsv with IDs only, or IDs and symbols (other aligners' output), uncompressed: read as the
    three-column folder is, the IDs standing in for absent symbols; a matrix of another shape: one line."""
    from tenx import write_10x
    x, genes, ids = counts_matrix(), ["MT-A", "B", "B", "C", "D"], names(5, "ENSG")
    d = write_10x(tmp_path / "mtx", x, names(6, "AAAC-"), ids, genes)
    with gzip.open(d / "features.tsv.gz", "rt") as f:
        rows = [line.split("\t")[:columns] for line in f.read().splitlines()]
    (d / "features.tsv.gz").unlink()
    (d / "features.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
    b = io.read_counts(d)
    want = genes if columns == 2 else ids
    assert list(b.var_names) == want and list(b.var["symbol"]) == want and list(b.var["gene_id"]) == ids
    assert list(b.obs_names) == names(6, "AAAC-")
    np.testing.assert_array_equal(b.X.toarray(), x)
    (d / "features.tsv").write_text("".join("\t".join(r) + "\n" for r in rows[:4]))
    with pytest.raises(InputError, match="matrix.mtx is 5 genes x 6 cells but the folder lists 4 features"):
        io.read_counts(d)


def test_read_lines_tolerates_bom_and_crlf(tmp_path):
    """A gene list saved by Windows Notepad (UTF-8 BOM, CRLF) keeps its first gene."""
    (tmp_path / "g.txt").write_bytes("\ufeffCD3E\r\nMS4A1\r\n\r\n  LYZ \r\n".encode("utf-8"))
    assert io.read_lines(tmp_path / "g.txt") == ["CD3E", "MS4A1", "LYZ"]
    with gzip.open(tmp_path / "g.txt.gz", "wb") as f:
        f.write("\ufeffCD3E\r\nMS4A1\r\n".encode("utf-8"))
    assert io.read_lines(tmp_path / "g.txt.gz") == ["CD3E", "MS4A1"]
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="cannot read as UTF-8 text"):
        io.read_lines(tmp_path / "bin.txt")


@pytest.mark.parametrize("rows, cols, header, expected", [
    (names(5, "g"), names(6, "c"), "gene", "genes_x_cells"),                        # the first column's name
    (names(6, "c"), names(5, "g"), "barcode", "cells_x_genes"),
    (["AAACATACAACCAC-1", "AAACATTGAGCTAC-1"], ["CD3E", "LYZ"], None, "cells_x_genes"),   # barcodes
    (["CD3E", "LYZ"], ["ctrl_AAACATACAACCAC-1", "ctrl_AAACATTGAGCTAC-1"], None, "genes_x_cells"),
    (["c1", "c2"], ["ENSG00000187634", "ENSG00000188976"], None, "cells_x_genes"),  # Ensembl IDs
    (["MT-CO1", "LYZ"], ["x1", "x2"], None, "genes_x_cells"),                      # MT- genes
    (["a", "b"], ["x", "y"], None, None),                                          # nothing tells
])
def test_guess_csv_orientation(rows, cols, header, expected):
    assert io.guess_csv_orientation(rows, cols, header)[0] == expected


def test_read_csv_orientation_option(tmp_path):
    x = counts_matrix()
    df = pd.DataFrame(x, index=names(6, "x"), columns=names(5, "y"))            # names tell nothing
    df.to_csv(tmp_path / "t.csv")
    assert io.read_counts(tmp_path / "t.csv").shape == (5, 6)                    # the default layout, with a warning
    b = io.read_counts(tmp_path / "t.csv", csv_orientation="cells_x_genes")
    assert b.shape == (6, 5)
    np.testing.assert_array_equal(b.X.toarray(), x)
    df.T.to_csv(tmp_path / "t.txt", sep="\t")                                     # tab-separated .txt
    assert io.read_counts(tmp_path / "t.txt").shape == (6, 5)


@pytest.mark.parametrize("stored", ["csr", "dense"])
def test_read_rows_in_blocks_equals_selection(tmp_path, stored):
    """`io.read_rows` on the on-disk X of `io.h5ad_without_matrices` (blocks smaller than the matrix, rows in several blocks, none in some) and
    in memory gives the selected rows; no rows gives an empty matrix of the right width."""
    x = sp.random(53, 7, density=0.3, format="csr", random_state=0, dtype=np.float32)
    x.data = np.ceil(x.data * 10)
    path = tmp_path / "x.h5ad"
    ad.AnnData(X=x if stored == "csr" else x.toarray(), layers={"counts": x}).write_h5ad(path)
    rows = np.array([0, 1, 9, 30, 31, 52])
    with io.h5ad_without_matrices(path) as (meta, on_disk):
        assert meta.n_obs == 53 and meta.X is None and not meta.layers
        got = io.read_rows(on_disk, rows, block=8)
        assert sp.issparse(got) and got.shape == (6, 7)
        np.testing.assert_array_equal(got.toarray(), x[rows].toarray())
        assert io.read_rows(on_disk, np.array([], dtype=int), block=8).shape == (0, 7)
    np.testing.assert_array_equal(io.read_rows(x, rows, block=5).toarray(), x[rows].toarray())


def test_h5ad_without_matrices_names_a_bad_file(tmp_path):
    bad = tmp_path / "bad.h5ad"
    bad.write_text("not hdf5")
    with pytest.raises(InputError, match="bad.h5ad"):
        with io.h5ad_without_matrices(bad):
            pass
