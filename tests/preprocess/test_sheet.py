"""Sample sheets (`scfactor.preprocess.sheet`): several samples in one data set, and one-line errors naming
the sheet and its line for every bad sheet."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import assert_clean_failure, run_cli
from scfactor.core.config import ConfigError
from scfactor.preprocess.cli import preprocess
from scfactor.preprocess.sheet import read_sheet, sample_files
from scfactor.preprocess.smk import check_datasets, preprocess_command, preprocess_inputs, preprocess_source
from tenx import barcodes, ensembl_ids, symbols, synthetic_counts, write_10x, write_sheet

N_GENES = 30


def two_samples(tmp_path, dup_symbols=False, shared=5, genes_b=N_GENES):
    """Two 10x folders under tmp_path/data: s1 (40 cells) and s2 (30 cells, ``shared`` barcodes of s1)."""
    bc1, bc2 = barcodes(40, 1), barcodes(30, 2)
    bc2[:shared] = bc1[:shared]
    sym = symbols(N_GENES)
    sym_a = list(sym)
    if dup_symbols:
        sym_a[5] = sym_a[6]
    write_10x(tmp_path / "data" / "s1", synthetic_counts(40, N_GENES, 1), bc1, ensembl_ids(N_GENES), sym_a)
    write_10x(tmp_path / "data" / "s2", synthetic_counts(30, genes_b, 2), bc2, ensembl_ids(genes_b), sym[:genes_b])
    return bc1, bc2


def outputs(tmp_path):
    return [tmp_path / "out" / "p.h5ad", tmp_path / "out" / "qc.tsv", tmp_path / "out" / "qc.png"]


def run_sheet(tmp_path, sheet, *extra):
    out = outputs(tmp_path)
    return run_cli(preprocess, "--sample-sheet", sheet, "--output", out[0], "--qc-table", out[1],
                   "--qc-figure", out[2], "--n-hvg", 5, *extra), out


def test_sheet_joins_samples(tmp_path, monkeypatch):
    bc1, bc2 = two_samples(tmp_path, genes_b=N_GENES - 4)
    sheet = write_sheet(tmp_path / "samples.tsv", [("s1", "data/s1", "b1", "ctrl", "D1"),
                                                   ("s2", "data/s2", "b2", "stim", "")],
                        header=("sample", "path", "batch", "condition", "donor"))
    monkeypatch.chdir(tmp_path / "data")       # paths are relative to the sheet, not to the working directory
    proc, out = run_sheet(tmp_path, sheet)
    assert proc.returncode == 0, proc.stderr
    a = ad.read_h5ad(out[0])
    assert a.obs["sample"].value_counts().to_dict() == {"s1": 40, "s2": 30}
    assert a.obs["batch"].astype(str).tolist() == ["b1"] * 40 + ["b2"] * 30      # batch_key: the sheet's batch
    assert a.obs["condition"].astype(str).tolist() == ["ctrl"] * 40 + ["stim"] * 30
    assert a.obs["donor"].isna().sum() == 30                                     # an empty metadata cell: NaN
    assert a.n_vars == N_GENES - 4                                               # the genes of every sample
    assert "4 of 30 genes are not in every sample and are dropped" in proc.stderr
    assert "5 barcodes occur in more than one sample" in proc.stderr and "(10 cells renamed)" in proc.stderr
    assert f"s1_{bc1[0]}" in a.obs_names and f"s2_{bc1[0]}" in a.obs_names and bc1[10] in a.obs_names
    assert a.obs_names.is_unique
    assert list(a.uns["preprocess"]["samples"]) == ["s1", "s2"] and a.uns["preprocess"]["batch_key"] == "batch"
    assert "symbol" in a.var and "gene_id" in a.var


def test_sheet_without_batch_column_batches_by_sample(tmp_path):
    two_samples(tmp_path)
    sheet = write_sheet(tmp_path / "samples.tsv", [("s2", "data/s2"), ("s1", tmp_path / "data" / "s1")],
                        header=("sample", "path"))
    proc, out = run_sheet(tmp_path, sheet)
    assert proc.returncode == 0, proc.stderr
    assert list(ad.read_h5ad(out[0]).obs["batch"].cat.categories) == ["s2", "s1"]    # in sheet order


def test_a_comma_separated_sheet_reads_as_the_tab_separated_one(tmp_path):
    two_samples(tmp_path)
    tsv = write_sheet(tmp_path / "samples.tsv", [("s1", "data/s1", "b1", "ctrl"), ("s2", "data/s2", "b2", "")])
    csv = tmp_path / "samples.csv"
    csv.write_text(tsv.read_text().replace("\t", ","))
    from_csv, from_tsv = read_sheet(csv), read_sheet(tsv)
    assert from_csv.samples == from_tsv.samples and from_csv.columns == from_tsv.columns == ("batch", "condition")
    proc, out = run_sheet(tmp_path, csv)
    assert proc.returncode == 0, proc.stderr
    assert "a comma-separated sample sheet" in proc.stderr
    assert list(ad.read_h5ad(out[0]).obs["batch"].cat.categories) == ["b1", "b2"]


def test_duplicated_symbols_across_samples_are_joined_on_ids(tmp_path):
    """Only s1 has a duplicated symbol: the samples are joined on gene IDs, then the names made unique once."""
    two_samples(tmp_path, dup_symbols=True)
    sheet = write_sheet(tmp_path / "samples.tsv", [("s1", "data/s1"), ("s2", "data/s2")], header=("sample", "path"))
    proc, out = run_sheet(tmp_path, sheet)
    assert_clean_failure(proc, mentions="make_unique", outputs=out)
    assert "gene_names: ids" in proc.stderr
    proc, out = run_sheet(tmp_path, sheet, "--make-unique")
    assert proc.returncode == 0, proc.stderr
    assert "made 1 duplicated gene names unique (1 genes renamed" in proc.stderr
    a = ad.read_h5ad(out[0])
    assert a.n_vars == N_GENES and f"{symbols(N_GENES)[6]}-1" in a.var_names
    proc, out = run_sheet(tmp_path, sheet, "--gene-names", "ids")
    assert proc.returncode == 0, proc.stderr
    a = ad.read_h5ad(out[0])
    assert list(a.var_names[:2]) == ensembl_ids(2) and a.var["symbol"].iloc[0] == "MT-G0"
    assert "mitochondrial genes: 3 match" in proc.stderr                          # via var['symbol']


@pytest.mark.parametrize("case, mentions", [
    ("missing_file", "line 3 (sample 's2'): path"),
    ("duplicate", "line 3: duplicate sample name 's1' (also on line 2)"),
    ("empty_path", "line 3 (sample 's2'): empty value in column 'path'"),
    ("no_sample_column", "line 1: the header has no 'sample' column"),
    ("no_path_column", "line 1: the header has no 'path' column"),
    ("bad_name", "line 3: sample name 'my sample' is not a valid name"),
    ("empty_batch", "line 3 (sample 's2'): empty value in column 'batch'"),
    ("ragged", "line 3: 2 tab-separated fields, the header has 3"),
    ("commas", "line 3: 2 comma-separated fields, the header has 3"),
    ("no_rows", "no sample rows"),
])
def test_bad_sheets_fail_with_one_line(tmp_path, case, mentions):
    two_samples(tmp_path)
    rows = [["s1", "data/s1", "b1"], ["s2", "data/s2", "b2"]]
    header = ["sample", "path", "batch"]
    if case == "missing_file":
        rows[1][1] = "data/absent"
    elif case == "duplicate":
        rows[1][0] = "s1"
    elif case == "empty_path":
        rows[1][1] = ""
    elif case == "no_sample_column":
        header[0] = "name"
    elif case == "no_path_column":
        header[1] = "file"
    elif case == "bad_name":
        rows[1][0] = "my sample"
    elif case == "empty_batch":
        rows[1][2] = ""
    elif case == "ragged":
        rows[1] = rows[1][:2]
    elif case == "no_rows":
        rows = []
    sheet = write_sheet(tmp_path / "samples.tsv", rows, header=header)
    if case == "commas":
        sheet.write_text("sample,path,batch\ns1,data/s1,b1\ns2,data/s2\n")
    proc, out = run_sheet(tmp_path, sheet)
    assert_clean_failure(proc, mentions=str(sheet), outputs=out)
    assert mentions in proc.stderr, proc.stderr
    with pytest.raises(ConfigError, match="datasets.mine.sheet: .*" + str(sheet)):   # the same line at parse time
        check_datasets({"datasets": {"mine": {"sheet": str(sheet)}}})


def test_missing_sheet_and_comments(tmp_path):
    two_samples(tmp_path)
    with pytest.raises(Exception, match="sample sheet does not exist"):
        read_sheet(tmp_path / "nope.tsv")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("\ufeff# a comment\nsample\tpath\r\n\r\n# another\ns1\tdata/s1\r\n")
    assert [s.name for s in read_sheet(sheet).samples] == ["s1"]


def test_rule_helpers(tmp_path):
    """Parse-time checks, the input list (every sample file, so a changed sample reruns the job), the command."""
    two_samples(tmp_path)
    sheet = write_sheet(tmp_path / "samples.tsv", [("s1", "data/s1"), ("s2", "data/s2")], header=("sample", "path"))
    config = {"datasets": {"mine": {"sheet": str(sheet), "path": "", "batch_key": None, "gene_names": "ids"},
                           "other": {"path": "x.h5ad", "sheet": None}},
              "preprocess": {}}
    check_datasets(config)
    assert config["datasets"]["mine"]["batch_key"] == "sample"
    inputs = preprocess_inputs(config, "mine")
    assert inputs[0] == str(sheet) and len(inputs) == 7
    assert str(tmp_path / "data" / "s2" / "features.tsv.gz") in inputs
    (tmp_path / "run" / "outs").mkdir(parents=True)
    (tmp_path / "data" / "s2").rename(tmp_path / "run" / "outs" / "filtered_feature_bc_matrix")
    assert sample_files(tmp_path / "run") == [str(tmp_path / "run" / "outs" / "filtered_feature_bc_matrix" / f)
                                              for f in ("matrix.mtx.gz", "barcodes.tsv.gz", "features.tsv.gz")]
    assert sample_files(tmp_path / "data") == [str(tmp_path / "data")]  # no matrix: the job says so
    assert preprocess_inputs(config, "other", lambda p: [p, "marker"]) == ["x.h5ad", "marker"]
    assert preprocess_source(config, "mine") == f"--sample-sheet {sheet}"
    assert preprocess_source(config, "other") == "--input x.h5ad"
    assert "--gene-names ids" in preprocess_command(config, "mine")
    assert "--batch-key sample" in preprocess_command(config, "mine")
    for entry, word in (({"path": "a.h5ad", "sheet": str(sheet)}, "both"), ({"path": ""}, "neither")):
        with pytest.raises(ConfigError, match=f"datasets.bad: give exactly one of path .* not {word}"):
            check_datasets({"datasets": {"bad": entry}})
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        preprocess_inputs(config, "nope")


def test_h5ad_and_csv_samples_join_on_names(tmp_path):
    """Samples without gene IDs (an .h5ad and a CSV) are joined on their names."""
    x = synthetic_counts(20, 8, 3)
    genes = symbols(8)
    ad.AnnData(x, obs=pd.DataFrame(index=barcodes(20, 3)), var=pd.DataFrame(index=genes)).write_h5ad(tmp_path / "a.h5ad")
    df = pd.DataFrame(x[:10, ::-1], index=pd.Index(barcodes(10, 4), name="barcode"), columns=genes[::-1])
    df.to_csv(tmp_path / "b.csv")                                     # cells as rows, genes in another order
    sheet = write_sheet(tmp_path / "samples.tsv", [("a", "a.h5ad"), ("b", "b.csv")], header=("sample", "path"))
    proc, out = run_sheet(tmp_path, sheet)
    assert proc.returncode == 0, proc.stderr
    a = ad.read_h5ad(out[0])
    assert a.n_obs == 30 and "cells as rows" in proc.stderr
    b = a[a.obs["sample"] == "b"]
    np.testing.assert_array_equal(b.layers["counts"].toarray(), x[:10][:, [genes.index(g) for g in a.var_names]])
