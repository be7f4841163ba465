"""What the rules build from the config: command lines valid for the scripts, inputs, sources."""

from __future__ import annotations

import shlex

import pytest

from conftest import load_tiny_config
from scfactor.core.options import check_argv, load_schema
from scfactor.integrate.cli import INTEGRATE, SIMULATE, SOURCES
from scfactor.integrate.smk import (integrate_command, integrate_inputs, integrate_sources,
                                    simulate_batches_command)


@pytest.fixture
def cfg():
    c = load_tiny_config()
    c.setdefault("simulate", {}).setdefault("batches", {})
    return c


def test_sources_come_from_the_schema():
    assert SOURCES == tuple(load_schema("integrate")["properties"]["sources"]["items"]["enum"])
    assert SOURCES == ("counts", "neumf")


@pytest.mark.parametrize("dataset", ["kang", "sim_batches"])
def test_integrate_command_parses_and_carries_the_config(cfg, dataset):
    words = shlex.split(integrate_command(cfg, dataset, "counts"))
    check_argv(INTEGRATE, words)
    assert words[words.index("--k") + 1] == str(cfg["integrate"]["k"])
    assert words[words.index("--lambda") + 1] == "5.0"
    assert words[words.index("--genes") + 1] == "liger"
    batches = cfg["datasets"][dataset].get("batches") or []
    if batches:
        assert words[words.index("--batches") + 1:][:len(batches)] == batches
    else:
        assert "--batches" not in words


def test_neumf_runs_in_batch_mode_without_batches(cfg):
    cfg["integrate"]["mode"] = "online"
    words = shlex.split(integrate_command(cfg, "kang", "neumf"))
    check_argv(INTEGRATE, words)
    assert words[words.index("--mode") + 1] == "batch" and "--batches" not in words
    counts = shlex.split(integrate_command(cfg, "kang", "counts"))
    assert counts[counts.index("--mode") + 1] == "online"


def test_genes_hvg_reaches_the_command(cfg):
    cfg["integrate"]["genes"] = "hvg"
    words = shlex.split(integrate_command(cfg, "kang", "counts"))
    assert words[words.index("--genes") + 1] == "hvg"
    assert INTEGRATE.defaults().genes == load_schema("integrate")["properties"]["genes"]["default"]


def test_inputs_and_sources(cfg):
    assert integrate_inputs(cfg, "R", "kang", "counts") == ["R/preprocess/kang.h5ad"]
    assert integrate_inputs(cfg, "R", "kang", "neumf") == ["R/densify/kang/ctrl.h5ad", "R/densify/kang/stim.h5ad"]
    cfg["integrate"]["sources"] = ["counts", "neumf"]
    assert integrate_sources(cfg, "kang") == ["counts", "neumf"]  # kang is a densify target
    assert integrate_sources(cfg, "sim_batches") == ["counts"]
    with pytest.raises(ValueError, match="not in datasets"):
        integrate_inputs(cfg, "R", "nope", "counts")


def test_simulate_command_parses(cfg):
    words = shlex.split(simulate_batches_command(cfg))
    check_argv(SIMULATE, words)
    n = cfg["simulate"]["batches"].get("n_cells")
    if n:
        assert words[words.index("--n-cells") + 1:][:len(n)] == [str(x) for x in n]
