"""The grn step (scfactor.grn.cli.grn -> scfactor.grn.pipeline): outputs, determinism, one-line failures."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import assert_clean_failure, run_cli, step_command
from grn.data import grn_args, outputs, write_prior, write_toy
from scfactor.grn import inputs as gi
from scfactor.grn.cli import GRN, grn
from scfactor.grn.pipeline import infer_grn

torch.set_num_threads(1)   # the shared 2-core machine: more threads only spin against other processes


@pytest.fixture
def toy(tmp_path):
    """A preprocessed-like .h5ad with two states and a DoRothEA-format prior over its genes."""
    return write_toy(tmp_path)


def test_step_outputs_and_determinism(toy):
    h5, prior, d = toy
    o1, o2 = outputs(d, "a"), outputs(d, "b")
    proc = subprocess.run(step_command(grn, *grn_args(h5, prior, o1)), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "FISTA iterations" in proc.stderr and "mlp epoch" in proc.stderr
    assert run_cli(grn, *grn_args(h5, prior, o2)).returncode == 0    # second run in-process
    for k in ("edges", "r2", "metrics"):
        assert o1[k].read_bytes() == o2[k].read_bytes(), k
    edges = pd.read_csv(o1["edges"], sep="\t")
    assert list(edges.columns) == ["tf", "target", "weight", "sign", "prior_sign"]
    pr = gi.read_prior(prior)
    allowed = set(zip(pr["tf"], pr["target"]))
    assert set(zip(edges["tf"], edges["target"])) <= allowed
    assert (np.sign(edges["weight"]) == edges["sign"]).all()
    with np.load(o1["weights"]) as f:
        assert np.all(f["weight"][~f["mask"]] == 0) and f["mask"].sum() == len(edges)
        assert f["y_test"].shape == f["pred_linear"].shape == f["pred_mlp"].shape
    m = pd.read_csv(o1["metrics"], sep="\t")
    assert {"linear", "mlp", "mean_baseline", "pairing"} <= set(m["model"])
    r2 = pd.read_csv(o1["r2"], sep="\t")
    assert len(r2) == edges["target"].nunique()
    assert run_cli(grn, "--help").returncode == 0


def test_library_call_matches_the_step(toy):
    """`infer_grn` with `GRN.defaults(...)` is what the step runs: the same tables, byte for byte."""
    from scfactor.core import io
    h5, prior, d = toy
    o = outputs(d)
    assert run_cli(grn, *grn_args(h5, prior, o), "--name", "toy").returncode == 0
    opts = GRN.defaults(source_labels=("stemA",), target_labels=("stemB",), mlp_epochs=20, n_pcs=5, device="cpu")
    out = infer_grn(h5, prior, opts, "toy")
    for k in ("edges", "r2", "metrics"):
        io.write_table(getattr(out, k), d / f"lib.{k}.tsv")
        assert (d / f"lib.{k}.tsv").read_bytes() == o[k].read_bytes(), k
    assert (pd.read_csv(o["metrics"], sep="\t")["transition"] == "toy").all()


@pytest.mark.parametrize("rows, mentions", [
    ([("STAT1", "A", "G1", 1.0), ("IRF9", "A", "G2", -1.0)], "TFs is among"),           # no prior TF in the data
    ([("tf0", "A", "g1", 1.0), ("tf1", "A", "g2", -1.0)], "mismatched gene names"),    # other species' symbols
], ids=["no_prior_tf_among_genes", "mismatched_gene_names"])
def test_bad_input_prior_genes(toy, rows, mentions):
    h5, _, d = toy
    o = outputs(d)
    proc = run_cli(grn, *grn_args(h5, write_prior(d / "p.csv", rows), o))
    assert_clean_failure(proc, mentions=mentions, outputs=o.values())


def test_bad_input_empty_cell_state(toy):
    h5, prior, d = toy
    o = outputs(d)
    args = grn_args(h5, prior, o)
    args[args.index("stemB")] = "no such state"
    proc = run_cli(grn, *args)
    assert_clean_failure(proc, mentions="is empty", outputs=o.values())


def test_bad_input_undefined_cell_state(toy):
    h5, prior, d = toy
    o = outputs(d)
    args = grn_args(h5, prior, o)
    i = args.index("--target-labels")
    del args[i:i + 2]
    assert_clean_failure(run_cli(grn, *args), mentions="state B needs", outputs=o.values())


def test_bad_input_unreadable_prior(toy):
    h5, _, d = toy
    bad = d / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    o = outputs(d)
    assert_clean_failure(run_cli(grn, *grn_args(h5, bad, o)), mentions="bad.csv", outputs=o.values())


def test_trrust_prior_read_as_dorothea_fails_clearly(toy):
    h5, _, d = toy
    t = d / "t.tsv"
    t.write_text("TF\tTarget\tRegulation\tReference\nTF0\tG1\tActivation\t1\n")
    o = outputs(d)
    assert_clean_failure(run_cli(grn, *grn_args(h5, t, o)), mentions="DoRothEA prior", outputs=o.values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_cuda_device_fails_clearly(toy):
    h5, prior, d = toy
    o = outputs(d)
    args = grn_args(h5, prior, o)
    args[args.index("cpu")] = "cuda"
    assert_clean_failure(run_cli(grn, *args), mentions="cuda", outputs=o.values())


def test_genes_named_by_ensembl_ids_match_the_prior_on_their_symbols(toy):
    """The toy data renamed to Ensembl IDs with var['symbol'] (preprocess with gene_names: ids): the same edge,
    R2 and metrics tables as with symbols as names."""
    import anndata as ad
    h5, prior, d = toy
    a = ad.read_h5ad(h5)
    a.var["symbol"] = a.var_names.to_numpy()
    a.var_names = [f"ENSG{i:011d}" for i in range(a.n_vars)]
    a.write_h5ad(d / "ids.h5ad")
    by_symbol, by_id = outputs(d, "sym"), outputs(d, "ids")
    assert run_cli(grn, *grn_args(h5, prior, by_symbol)).returncode == 0
    proc = run_cli(grn, *grn_args(d / "ids.h5ad", prior, by_id))
    assert proc.returncode == 0, proc.stderr
    assert "genes named by Ensembl IDs; the prior is matched on var['symbol']" in proc.stderr
    for k in ("edges", "r2", "metrics"):
        assert by_id[k].read_bytes() == by_symbol[k].read_bytes(), k
