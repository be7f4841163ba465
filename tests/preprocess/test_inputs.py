"""Messy inputs of the preprocess step: gene identifiers (symbols / IDs / duplicates / the mitochondrial
filter), batch columns with missing values, gene lists in another case, and outputs left all or nothing."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import assert_clean_failure, run_cli
from scfactor.preprocess.cli import preprocess
from tenx import barcodes, ensembl_ids, symbols, synthetic_counts, write_10x

N_CELLS, N_GENES = 40, 20


def outputs(tmp_path):
    """Output paths in a fresh folder per run (several runs per test)."""
    n = len(list(tmp_path.glob("out*")))
    return [tmp_path / f"out{n}" / "p.h5ad", tmp_path / f"out{n}" / "qc.tsv", tmp_path / f"out{n}" / "qc.png"]


def run_pp(tmp_path, inp, *extra):
    out = outputs(tmp_path)
    out[0].parent.mkdir()
    return run_cli(preprocess, "--input", inp, "--output", out[0], "--qc-table", out[1], "--qc-figure", out[2],
                   "--n-hvg", 5, *extra), out


def tenx_folder(tmp_path, dup=True):
    sym = symbols(N_GENES)
    if dup:
        sym[4] = sym[5] = sym[6]                     # three genes share a symbol (10x PBMC 3k hg19 has such)
    return write_10x(tmp_path / "tenx", synthetic_counts(N_CELLS, N_GENES, 0), barcodes(N_CELLS, 0),
                     ensembl_ids(N_GENES), sym)


def h5ad_with_ids(tmp_path, symbol_col=True):
    var = pd.DataFrame(index=ensembl_ids(N_GENES))
    if symbol_col:
        var["gene_symbols"] = symbols(N_GENES)
    path = tmp_path / "ids.h5ad"
    ad.AnnData(sp.csr_matrix(synthetic_counts(N_CELLS, N_GENES, 1)), obs=pd.DataFrame(index=barcodes(N_CELLS, 1)),
               var=var).write_h5ad(path)
    return path


def test_duplicated_symbols_error_suggests_the_options(tmp_path):
    proc, out = run_pp(tmp_path, tenx_folder(tmp_path))
    assert_clean_failure(proc, mentions="2 duplicated gene names (first: 'GENE6')", outputs=out)
    assert "make_unique: true" in proc.stderr and "gene_names: ids" in proc.stderr


def test_make_unique_logs_the_count(tmp_path):
    proc, out = run_pp(tmp_path, tenx_folder(tmp_path), "--make-unique")
    assert proc.returncode == 0, proc.stderr
    assert "made 1 duplicated gene names unique (2 genes renamed" in proc.stderr
    a = ad.read_h5ad(out[0])
    assert {"GENE6", "GENE6-1", "GENE6-2"} <= set(a.var_names)
    assert (a.var.loc[["GENE6-1", "GENE6-2"], "symbol"] == "GENE6").all()


def test_gene_ids_as_names_keep_symbols_for_the_mito_filter(tmp_path):
    proc, out = run_pp(tmp_path, tenx_folder(tmp_path), "--gene-names", "ids", "--max-pct-mito", 50)
    assert proc.returncode == 0, proc.stderr
    a = ad.read_h5ad(out[0])
    assert a.var_names[0].startswith("ENSG") and a.var["symbol"].iloc[0] == "MT-G0"
    assert "mitochondrial genes: 3 match" in proc.stderr
    assert (a.obs["pct_mito"] > 0).mean() > 0.5


def test_ensembl_ids_without_symbols_never_report_0pct_silently(tmp_path):
    path = h5ad_with_ids(tmp_path, symbol_col=False)
    proc, out = run_pp(tmp_path, path, "--max-pct-mito", 20)                     # the filter would do nothing
    assert_clean_failure(proc, mentions="look like Ensembl IDs", outputs=out)
    assert "symbol_column" in proc.stderr and "max_pct_mito: 100" in proc.stderr
    proc, out = run_pp(tmp_path, path)                                            # no filter asked: a warning
    assert proc.returncode == 0, proc.stderr
    warn = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln and "Ensembl IDs" in ln]
    assert len(warn) == 1 and "symbol_column" in warn[0], proc.stderr


def test_symbol_column_of_an_h5ad(tmp_path):
    path = h5ad_with_ids(tmp_path)
    proc, out = run_pp(tmp_path, path, "--symbol-column", "gene_symbols", "--gene-names", "ids",
                       "--max-pct-mito", 60)
    assert proc.returncode == 0, proc.stderr
    a = ad.read_h5ad(out[0])
    assert a.var_names[0] == ensembl_ids(1)[0] and a.var["symbol"].iloc[0] == "MT-G0"
    assert (a.obs["pct_mito"] > 0).mean() > 0.5
    proc, out = run_pp(tmp_path, path, "--symbol-column", "gene_symbols")           # symbols as names
    assert proc.returncode == 0 and ad.read_h5ad(out[0]).var_names[0] == "MT-G0"
    proc, out = run_pp(tmp_path, path, "--symbol-column", "nope")
    assert_clean_failure(proc, mentions="has no var column 'nope'", outputs=out)


@pytest.mark.parametrize("missing", [np.nan, ""])
def test_batch_column_with_missing_values_is_an_error(tmp_path, missing):
    """Not a batch called 'nan': one line with the number of cells without a batch."""
    batch = np.array(["a"] * 20 + ["b"] * 20, dtype=object)
    batch[[3, 7, 30]] = missing
    path = tmp_path / "in.h5ad"
    ad.AnnData(sp.csr_matrix(synthetic_counts(N_CELLS, N_GENES, 2)), obs=pd.DataFrame({"cond": batch},
               index=[f"c{i}" for i in range(N_CELLS)]), var=pd.DataFrame(index=symbols(N_GENES))).write_h5ad(path)
    proc, out = run_pp(tmp_path, path, "--batch-key", "cond")
    assert_clean_failure(proc, mentions="obs column 'cond' (the batch key) has no value for 3 of 40 cells "
                                        "(first: 'c3')", outputs=out)


def test_gene_list_with_bom_crlf_and_another_case(tmp_path):
    path = tmp_path / "in.h5ad"
    genes = symbols(N_GENES)
    ad.AnnData(sp.csr_matrix(synthetic_counts(N_CELLS, N_GENES, 3)), obs=pd.DataFrame(index=barcodes(N_CELLS, 3)),
               var=pd.DataFrame(index=genes)).write_h5ad(path)
    listed = tmp_path / "genes.txt"
    listed.write_bytes(("\ufeff" + "\r\n".join(genes[3:9]) + "\r\n").encode("utf-8"))   # Windows Notepad
    proc, out = run_pp(tmp_path, path, "--gene-list", listed)
    assert proc.returncode == 0, proc.stderr
    assert list(ad.read_h5ad(out[0]).var_names) == genes[3:9]                     # the first gene is kept
    listed.write_text("\n".join([g.lower() for g in genes[3:6]] + genes[6:9]) + "\n")
    proc, out = run_pp(tmp_path, path, "--gene-list", listed)
    assert proc.returncode == 0, proc.stderr
    warn = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln and "ignoring case" in ln]
    assert len(warn) == 1 and "3 of its 6 names match" in warn[0] and "6 would match ignoring case" in warn[0]
    assert list(ad.read_h5ad(out[0]).var_names) == genes[6:9]
    listed.write_text("\n".join(g.lower() for g in genes[3:6]) + "\n")
    proc, out = run_pp(tmp_path, path, "--gene-list", listed)
    assert_clean_failure(proc, mentions="none of its 3 gene names occurs", outputs=out)
    assert "3 match ignoring case" in proc.stderr


def test_counts_csv_with_cells_as_rows(tmp_path):
    x = synthetic_counts(N_CELLS, N_GENES, 4)
    cells, genes = barcodes(N_CELLS, 4), symbols(N_GENES)
    pd.DataFrame(x, index=cells, columns=genes).to_csv(tmp_path / "cells_rows.csv")
    proc, out = run_pp(tmp_path, tmp_path / "cells_rows.csv")
    assert proc.returncode == 0, proc.stderr
    assert "read as cells as rows, genes as columns (40 rows x 20 columns): the rows are named like cell " \
           "barcodes" in proc.stderr
    a = ad.read_h5ad(out[0])
    assert a.n_obs == N_CELLS and set(a.var_names) <= set(genes)
    proc, out = run_pp(tmp_path, tmp_path / "cells_rows.csv", "--csv-orientation", "genes_x_cells")
    assert proc.returncode == 0 and ad.read_h5ad(out[0]).n_obs == N_GENES          # told so: as told


def test_failed_h5ad_write_leaves_no_output(tmp_path, monkeypatch):
    """All or nothing: the QC table and figure are written first, then the .h5ad write fails."""
    path = tmp_path / "in.h5ad"
    ad.AnnData(sp.csr_matrix(synthetic_counts(N_CELLS, N_GENES, 5)), obs=pd.DataFrame(index=barcodes(N_CELLS, 5)),
               var=pd.DataFrame(index=symbols(N_GENES))).write_h5ad(path)

    import anndata.io

    def disk_full(*args, **kwargs):  # the .h5ad is written block by block: the first block fills the disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(anndata.io, "sparse_dataset", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_pp(tmp_path, path)
    left = sorted(p.name for p in (tmp_path / "out0").iterdir())
    assert left == [], f"outputs left after a failed write: {left}"


def test_a_cell_ranger_run_folder_reads_its_filtered_matrix(tmp_path):
    """The run folder named, not the matrix folder: its outs/filtered_feature_bc_matrix is read, and logged."""
    x = synthetic_counts(N_CELLS, N_GENES, 0)
    write_10x(tmp_path / "run" / "outs" / "filtered_feature_bc_matrix", x, barcodes(N_CELLS, 0),
              ensembl_ids(N_GENES), symbols(N_GENES))
    write_10x(tmp_path / "run" / "outs" / "raw_feature_bc_matrix", x[:5], barcodes(5, 0), ensembl_ids(N_GENES),
              symbols(N_GENES))
    proc, out = run_pp(tmp_path, tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "a Cell Ranger output folder; reading its filtered matrix" in proc.stderr
    np.testing.assert_array_equal(ad.read_h5ad(out[0]).layers["counts"].sum(), x.sum())
