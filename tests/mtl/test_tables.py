"""The pandas-free shard path: no pandas import, tables byte-identical to pandas', readers equal to pandas'."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import assert_clean_failure, run_cli, step_command
from scfactor.core.errors import InputError
from scfactor.mtl import layout as L
from scfactor.mtl import tables
from scfactor.mtl.cli import TRAIN_SHARD, mtl_train_shard
from scfactor.mtl.shard import cluster_genes, train_shard, write_shard_table

from .conftest import copy_layout

#: packages the numpy shard process has no use for (their imports would be a fixed cost of every shard)
UNNEEDED = ("pandas", "tensorflow", "keras", "torch", "scipy", "sklearn", "anndata", "scanpy", "matplotlib")


def test_numpy_shard_process_imports_no_pandas(layout, tmp_path):
    """The shard's CLI in a fresh interpreter (as its script runs it): `-X importtime` lists every module it
    imports; none of the packages it does not need is among them, and it still writes both outputs."""
    root, cl = layout
    out, w = tmp_path / "s.tsv", tmp_path / "s.npz"
    cmd = step_command(mtl_train_shard, "--layout", root, "--tissue", "tissue1", "--clusters", cl, "--cluster", 0,
                       "--rep", 0, "--epochs", 2, "--engine", "numpy", "--threads", 1, "--output", out, "--weights", w)
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert {"numpy", "h5py", "scfactor.mtl.model_np"} <= modules          # the listing is complete
    assert not sorted(m for m in modules if m.split(".")[0] in UNNEEDED)
    assert out.exists() and w.exists()


#: awkward values of each column type of a shard table
AWKWARD = {"tissue": "tissue 1", "gene": np.array(["G1", 'a"b', "x,y", "NA", "nan", "G6", "", None], dtype=object),
           "cluster": 3, "rep": 0, "model": "tracenorm", "lambda": 1e-7,
           "r2": np.array([np.nan, 1.23456789e-30, -4.56789e+30, -0.25, 0.0, -0.0, 123456789.0, 0.1 + 0.2]),
           "n_train": [0, 1, 2, 10**12, 5, 6, 7, 8], "n_test": np.arange(8, dtype=np.int32),
           "f32": np.array([1.1, np.nan, -2.5e-8, 3e38, 1, 2, 3, 4], dtype=np.float32)}


@pytest.mark.parametrize("lam", [0.01, 0.0, 10, 1e7])
def test_shard_table_bytes_equal_pandas_for_awkward_values(tmp_path, lam):
    table = dict(AWKWARD, **{"lambda": lam})
    ours, theirs = tmp_path / "ours.tsv", tmp_path / "pandas.tsv"
    write_shard_table(ours, table)
    pd.DataFrame(table).to_csv(theirs, sep="\t", index=False, float_format="%.6g")
    assert ours.read_bytes() == theirs.read_bytes()
    assert b"\t\t" in ours.read_bytes() and b"e-30" in ours.read_bytes()   # NaN empty, tiny floats kept


def test_trained_shard_table_bytes_equal_pandas(layout, tmp_path):
    """A real shard's table: written by `write_shard_table` as pandas writes the same columns."""
    root, cl = layout
    opts = TRAIN_SHARD.defaults(epochs=1, engine="numpy")
    res = train_shard(root, "tissue1", cl, 0, 0, "tracenorm", opts, checkpoint_dir=None, threads=1)
    write_shard_table(tmp_path / "ours.tsv", res.table)
    pd.DataFrame(res.table).to_csv(tmp_path / "pandas.tsv", sep="\t", index=False, float_format="%.6g")
    assert (tmp_path / "ours.tsv").read_bytes() == (tmp_path / "pandas.tsv").read_bytes()


def test_na_strings_are_pandas_defaults():
    from pandas._libs.parsers import STR_NA_VALUES
    assert tables.NA_STRINGS == set(STR_NA_VALUES)


def _pandas_activity(path, log2):
    """The activity reader as it was with pandas (genes x TFs)."""
    df = pd.read_csv(path, index_col=0)
    v = np.nan_to_num(df.to_numpy(dtype=np.float64), nan=0.0)
    v = np.log2(v + 1.0) if log2 else v
    return pd.DataFrame(v.T, index=df.columns.astype(str), columns=df.index.astype(str))


def test_activity_reader_equals_pandas(tmp_path):
    path = tmp_path / "act.csv"
    path.write_text(",G1,G2,G3,G4\nTF1,1.5,,NA,3e-05\nTF2,-0,nan,0.333333,1.23457e+20\n"
                    "\nTF3,7,  2.5,N/A,1e-310\nTF4,0.1,0.2,0.3\n")
    for log2 in (False, True):
        ours, ref = L.read_activity(path, log2=log2), _pandas_activity(path, log2)
        assert ours.genes.tolist() == ref.index.tolist() and ours.tfs.tolist() == ref.columns.tolist()
        assert ours.values.tobytes() == ref.to_numpy().tobytes()


@pytest.mark.parametrize("text,problem", [
    (",G1,G2\nTF1,1,x\n", "non-numeric value 'x' in column 'G2'"),
    (",G1,G1\nTF1,1,2\n", "duplicated gene columns"),
    (",G1,G2\nTF1,1,2\nTF1,3,4\n", "duplicated TF rows"),
    (",G1\nTF1,1,2\n", "row 1 has 3 fields, the header 2"),
    (",G1,G2\nTF1,1,inf\n", "infinite values"),
    (",G1\n", "activity table is empty"),
    ("", "no columns to parse"),
])
def test_activity_reader_errors(tmp_path, text, problem):
    path = tmp_path / "act.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as err:
        L.read_activity(path, log2=False)
    assert "act.csv" in str(err.value) and "\n" not in str(err.value)


def test_id_tables_equal_pandas(layout, tmp_path):
    root = copy_layout(layout[0], tmp_path / "l")
    pd.DataFrame({"ensembl_id": ["E1", "E2", "E1", None, "E3", "E4"],
                  "gene_symbol": ["S1", None, "S1b", "S4", "S3", "NA"]}).to_csv(root / L.E2S)
    pd.DataFrame({"Ensembl ID": ["T2", "T1", None, "T2"]}).to_csv(root / L.TF_LIST)
    e2s, tfs = L.read_id_tables(root)
    df = pd.read_csv(root / L.E2S, index_col=0, dtype=str).dropna(subset=["ensembl_id", "gene_symbol"])
    df = df.loc[~df["ensembl_id"].duplicated()]
    assert e2s == dict(zip(df["ensembl_id"], df["gene_symbol"])) == {"E1": "S1", "E3": "S3"}
    expected = pd.read_csv(root / L.TF_LIST, index_col=0, dtype=str)["Ensembl ID"].dropna().unique()
    assert tfs.tolist() == expected.tolist()


def test_cluster_table_reader(tmp_path):
    path = tmp_path / "clusters.tsv"
    path.write_text("gene_ensembl\tcluster\nG1\t0\nG2\t1\nG3\t0\n")
    assert cluster_genes(path, 0).tolist() == ["G1", "G3"]
    with pytest.raises(InputError, match=r"cluster 2 has no genes \(clusters: 0, 1\)"):
        cluster_genes(path, 2)
    path.write_text("gene_ensembl\tcluster\nG1\ta\n")
    with pytest.raises(InputError, match=r"cluster 0 has no genes \(clusters: a\)"):
        cluster_genes(path, 0)
    path.write_text("gene\tcluster\nG1\t0\n")
    with pytest.raises(InputError, match="lacks column"):
        cluster_genes(path, 0)


def test_shard_cli_fails_in_one_line_on_a_bad_activity_cell(layout, tmp_path):
    root = copy_layout(layout[0], tmp_path / "l")
    p = root / "tf_activity" / "sum_tf" / "tissue1.csv"
    lines = p.read_text().splitlines()
    cells = lines[1].split(",")
    cells[1] = "high"
    p.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    out, w = tmp_path / "s.tsv", tmp_path / "s.npz"
    proc = run_cli(mtl_train_shard, "--layout", root, "--tissue", "tissue1", "--clusters", layout[1],
                   "--cluster", 0, "--rep", 0, "--epochs", 1, "--output", out, "--weights", w)
    assert_clean_failure(proc, mentions="sum_tf", outputs=[out, w])
    assert "non-numeric value 'high'" in proc.stderr
