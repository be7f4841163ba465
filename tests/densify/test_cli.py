"""The densify and densify_figure steps: output contract, figure, one-line failures on bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import assert_clean_failure, run_cli
from densify.data import densify_args, planted_counts, write_preprocessed
from scfactor.densify.cli import densify, densify_figure


def _outputs(tmp_path):
    return [tmp_path / "out.h5ad", tmp_path / "out.tsv"]


def test_step_writes_the_output_contract_and_its_figure(tmp_path):
    import anndata as ad
    x, _ = planted_counts(80, 50)
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    proc = run_cli(densify, *densify_args(inp, tmp_path, "--loss", "poisson"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "samples/s" in proc.stderr and "ETA" in proc.stderr
    assert "neumf epoch 2/2: loss" in proc.stderr
    a = ad.read_h5ad(tmp_path / "out.h5ad")
    assert a.layers["neumf"].dtype == np.float32 and a.layers["neumf"].shape == (80, 50)
    assert (sp.csr_matrix(a.layers["counts"]) != x).nnz == 0
    # X is the counts too (rebuilt from the training matrix and the held-out entries)
    assert a.X.dtype == np.float32 and (sp.csr_matrix(a.X) != x).nnz == 0
    assert list(a.obs["batch"].unique()) == ["b1"]
    u = a.uns["neumf"]
    assert set(u["heldout"]) == {"neumf_poisson", "zero", "svd_rank20"}
    assert u["params"]["loss"] == "poisson" and len(u["trace"]["neumf"]["loss"]) == 2
    assert u["params"]["embedding_dim"] == 8 and u["params"]["batch"] == "b1"
    t = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    assert list(t["method"]) == ["neumf_poisson", "zero", "svd_rank20"]
    assert t.set_index("method").loc["neumf_poisson", "n"] == round(0.1 * x.nnz)

    fig = tmp_path / "fig" / "heldout.png"
    proc = run_cli(densify_figure, "--input", tmp_path / "out.h5ad", "--title", "d b1", "--figure", fig)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert fig.read_bytes()[:4] == b"\x89PNG" and fig.stat().st_size > 10_000
    assert fig.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"


def test_figure_of_a_file_that_is_not_a_densify_output_fails_cleanly(tmp_path):
    x, _ = planted_counts(30, 20)
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    fig = tmp_path / "fig.png"
    proc = run_cli(densify_figure, "--input", inp, "--figure", fig)
    assert_clean_failure(proc, mentions=str(inp), outputs=[fig, fig.with_suffix(".pdf")])
    assert "densify.py" in proc.stderr


def test_figure_of_a_broken_densify_output_or_a_non_h5ad_fails_cleanly(tmp_path):
    """The figure reads the output with h5py a block at a time: a file that is not HDF5, or a densify output whose
    held-out entries lie outside its matrix, fails in one line naming it, with no figure left."""
    import h5py
    x, _ = planted_counts(40, 20)
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    assert run_cli(densify, *densify_args(inp, tmp_path, "--epochs", 1)).returncode == 0
    out, fig = tmp_path / "out.h5ad", tmp_path / "fig.png"
    with h5py.File(out, "r+") as f:
        rows = f["uns/neumf/heldout_rows"]
        rows[0] = 40
    proc = run_cli(densify_figure, "--input", out, "--figure", fig)
    assert_clean_failure(proc, mentions=str(out), outputs=[fig, fig.with_suffix(".pdf")])
    assert "outside its 40 x 20 matrix" in proc.stderr
    text = tmp_path / "not.h5ad"
    text.write_text("cell,gene\n")
    proc = run_cli(densify_figure, "--input", text, "--figure", fig)
    assert_clean_failure(proc, mentions=str(text), outputs=[fig, fig.with_suffix(".pdf")])
    assert "cannot read h5ad" in proc.stderr


def test_non_count_data_with_count_loss_fails_cleanly(tmp_path):
    x, _ = planted_counts(30, 20)
    xf = sp.csr_matrix(x, dtype=np.float32)
    xf.data = xf.data * 0.5 + 0.25
    inp = write_preprocessed(tmp_path / "in.h5ad", xf, float_counts=True)
    proc = run_cli(densify, *densify_args(inp, tmp_path, "--loss", "nb"))
    assert_clean_failure(proc, mentions=str(inp), outputs=_outputs(tmp_path))
    assert "non-integer" in proc.stderr and "--loss mse" in proc.stderr


def test_empty_and_all_zero_matrices_fail_cleanly(tmp_path):
    empty = write_preprocessed(tmp_path / "empty.h5ad", sp.csr_matrix((5, 0), dtype=np.int32))
    proc = run_cli(densify, *densify_args(empty, tmp_path))
    assert_clean_failure(proc, mentions=str(empty), outputs=_outputs(tmp_path))
    assert "empty" in proc.stderr
    zeros = write_preprocessed(tmp_path / "zeros.h5ad", sp.csr_matrix((6, 4), dtype=np.int32))
    proc = run_cli(densify, *densify_args(zeros, tmp_path))
    assert_clean_failure(proc, mentions=str(zeros), outputs=_outputs(tmp_path))
    assert "no nonzero" in proc.stderr


def test_absent_accelerator_fails_cleanly(tmp_path):
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    x, _ = planted_counts(30, 20)
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    proc = run_cli(densify, *densify_args(inp, tmp_path, "--accelerator", "gpu"))
    assert proc.returncode == 2
    errs = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1 and "--accelerator gpu" in errs[0] and "no GPU" in errs[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.h5ad").exists() and not (tmp_path / "out.tsv").exists()


def test_missing_batch_and_bad_option_fail_cleanly(tmp_path):
    x, _ = planted_counts(30, 20)
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    args = densify_args(inp, tmp_path)
    args[args.index("--batch") + 1] = "nope"
    proc = run_cli(densify, *args)
    assert_clean_failure(proc, mentions="nope", outputs=[tmp_path / "out.h5ad"])
    proc = run_cli(densify, *densify_args(inp, tmp_path, "--heldout-frac", "1.5"))
    assert_clean_failure(proc, mentions="--heldout-frac", outputs=[tmp_path / "out.h5ad"])
    proc = run_cli(densify, *densify_args(inp, tmp_path, "--bn-layers", "3"))
    assert_clean_failure(proc, mentions="--bn-layers", outputs=[tmp_path / "out.h5ad"])
