"""Shared modules: options derived from the schemas, checkpoints, figures, all-or-nothing outputs, progress."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pytest

from conftest import run_cli
from scfactor.core import checkpoint, cli, io, options
from scfactor.core.log import Progress


# ------------------------------------------------------------------------------------------- options
@pytest.fixture(scope="module")
def nbmix_fit():
    return options.Step("probe_fit", options.Group("nbmix", exclude=("runs", "leiden")),
                        options.Group("nbmix", "runs.*"))


def test_step_options_follow_the_schema(nbmix_fit):
    schema = options.load_schema("nbmix")
    opts = {o.dest: o for o in nbmix_fit.options}
    assert opts["nrep"].default == schema["properties"]["nrep"]["default"]
    assert opts["amortized_epochs"].flag == "--amortized-epochs"
    assert opts["k"].required and "threads" not in opts and "runs" not in opts
    defaults = nbmix_fit.defaults(k=3)
    assert defaults.nrep == schema["properties"]["nrep"]["default"] and defaults.k == 3
    with pytest.raises(Exception):
        defaults.k = 4                                  # frozen


def test_rule_command_line_round_trips_through_the_parser(nbmix_fit):
    section = {"nrep": 5, "tol": 1e-4, "method": "em", "amortized": {"epochs": 7}}
    run = {"k": 4, "batch": None, "drop_empty_cells": False}
    p = cli.parser("probe", nbmix_fit)
    args = p.parse_args(nbmix_fit.argv(section, run))
    got = nbmix_fit.from_args(args)
    assert (got.nrep, got.tol, got.amortized_epochs, got.k, got.batch, got.drop_empty_cells) == \
        (5, 1e-4, 7, 4, None, False)


def test_a_null_value_is_passed_when_the_default_is_not_null():
    step = options.Step("probe_null", options.Group("config", "datasets.*", include=("batch_key",)))
    assert step.argv({"batch_key": None}) == []          # default null: nothing to say
    opt = step.options[0]
    assert opt.convert("none") is None and opt.convert("cond") == "cond"


@pytest.mark.parametrize("argv, message", [
    (["--k", "0"], "argument --k: 0 is out of range (must be >= 1)"),
    (["--k", "4.0"], "argument --k: '4.0' is not an integer"),
    (["--k", "3", "--tol", "-1"], "argument --tol: -1.0 is out of range (must be >= 0)"),
    (["--k", "3", "--resp-tol", "1.5"], "argument --resp-tol: 1.5 is out of range (must be in [0, 1])"),
    (["--k", "3", "--method", "magic"], "argument --method: 'magic' is not one of em, amortized"),
    (["--k", "3", "--threads", "0"], "argument --threads: 0 is out of range (must be >= 1)"),
])
def test_bad_options_fail_with_one_line(nbmix_fit, argv, message):
    def probe(argv=None):
        """Probe step."""
        cli.start(cli.parser(probe, nbmix_fit), argv)
        return 0
    proc = run_cli(probe, *argv)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_file_valued_options_are_listed_and_staged(nbmix_fit):
    """A gene-set option names a file unless it is a keyword; the rule's staged copy replaces it."""
    section = {"leiden": {}}
    assert nbmix_fit.files(section, {"k": 3, "genes": "hvg"}) == []
    assert nbmix_fit.files(section, {"k": 3}) == []                    # the default, a keyword
    assert nbmix_fit.files(section, {"k": 3, "genes": "lists/g.txt"}) == ["lists/g.txt"]
    argv = nbmix_fit.argv(section, {"k": 3, "genes": "lists/g.txt"}, staged={"lists/g.txt": "stage/lists/g.txt"})
    assert argv[argv.index("--genes") + 1] == "stage/lists/g.txt"
    argv = nbmix_fit.argv(section, {"k": 3, "genes": "hvg"}, staged={"hvg": "stage/hvg"})
    assert argv[argv.index("--genes") + 1] == "hvg"                    # a keyword is never a file
    step = options.Step("probe_list", options.Group("config", "datasets.*", include=("gene_list",)))
    assert step.files({"gene_list": "all"}) == ["all"] and step.files({"gene_list": None}) == []


def test_integer_floats_are_found():
    assert options.integer_floats({"k": 4.0, "tol": 1.0}, {"properties": {"k": {"type": "integer"},
                                                                          "tol": {"type": "number"}}}, "x") == ["x.k"]


def test_duplicate_option_names_are_refused():
    with pytest.raises(ValueError, match="defined twice"):
        options.Step("probe_dup", options.Group("nbmix", include=("seed",)), options.Group("nbmix", include=("seed",)))


# ------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_and_fingerprint(tmp_path):
    x = np.arange(12.0).reshape(3, 4)
    fp = checkpoint.fingerprint(x, ["a", "b"], settings={"epochs": 10, "lr": 0.1})
    assert fp == checkpoint.fingerprint(x.copy(), ["a", "b"], settings={"lr": 0.1, "epochs": 10})
    assert fp != checkpoint.fingerprint(x, ["a", "b"], settings={"epochs": 5, "lr": 0.1})   # epochs count
    assert fp != checkpoint.fingerprint(x + 1, ["a", "b"], settings={"epochs": 10, "lr": 0.1})
    path = tmp_path / "state.npz"
    checkpoint.save(path, {"w": x}, fingerprint=fp, epoch=3, meta={"trace": [1.0, 0.5]})
    ck = checkpoint.load(path, fp)
    assert ck.epoch == 3 and ck.meta["trace"] == [1.0, 0.5] and np.array_equal(ck.arrays["w"], x)


@pytest.mark.parametrize("damage", ["stale", "truncated", "garbage"])
def test_bad_checkpoints_are_discarded_with_a_warning(tmp_path, caplog, damage):
    path = tmp_path / "state.npz"
    checkpoint.save(path, {"w": np.ones(1000)}, fingerprint="abc", epoch=1)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="scfactor"):
        assert checkpoint.load(path, "other" if damage == "stale" else "abc") is None
    assert "discarding" in caplog.text


# ------------------------------------------------------------------------------------------- outputs
def test_figures_are_png_and_pdf(tmp_path):
    import matplotlib.pyplot as plt

    from scfactor.core.plotting import save_figure
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="must end in .png"):
        save_figure(plt.subplots()[0], tmp_path / "g.pdf")


def test_all_or_nothing_removes_what_was_written(tmp_path):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    import pandas as pd
    with pytest.raises(RuntimeError):
        with io.all_or_nothing(a, b):
            io.write_table(pd.DataFrame({"x": [1]}), a)
            raise RuntimeError("the second write failed")
    assert not a.exists() and not b.exists()


def test_progress_lines(caplog):
    p = Progress("epoch", total=4, start=1)
    with caplog.at_level(logging.INFO, logger="scfactor"):
        p.log(2, loss=0.5)
    assert "epoch 2/4: loss 0.5" in caplog.text and "ETA" in caplog.text


def test_argparse_namespace_type():
    assert isinstance(cli.parser("x").parse_args([]), argparse.Namespace)
