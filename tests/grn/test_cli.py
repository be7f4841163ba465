"""The GRN command lines: options from the schema, rule command lines from the config, figures, summary."""

from __future__ import annotations

import copy
import shlex

import pandas as pd
import pytest
import yaml

from conftest import REPO, assert_clean_failure, load_tiny_config, run_cli
from grn.data import grn_args, outputs, write_toy
from scfactor.core.options import check_argv, load_schema
from scfactor.grn.cli import FIGURES, GRN, grn, grn_figures, grn_summary
from scfactor.grn.smk import grn_command, grn_figures_command, grn_prior_path, grn_runs


def _validated(cfg):
    from snakemake.utils import validate
    cfg = copy.deepcopy(cfg)
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"), set_default=True)
    cfg.setdefault("grn", {})
    validate(cfg["grn"], str(REPO / "workflow/schemas/grn.schema.yaml"), set_default=True)
    return cfg


CONFIGS = {"config": lambda: yaml.safe_load((REPO / "config/config.yaml").read_text()),
           "paper": lambda: {**yaml.safe_load((REPO / "config/config.yaml").read_text()),
                             **yaml.safe_load((REPO / "config/paper.yaml").read_text())},
           "tiny": load_tiny_config}


@pytest.mark.parametrize("which", CONFIGS)
def test_rule_command_lines_parse(which):
    """Every configured run's command line is valid for its script and carries the config's values."""
    cfg = _validated(CONFIGS[which]())
    assert grn_runs(cfg)
    for name in grn_runs(cfg):
        words = shlex.split(grn_command(cfg, name))
        check_argv(GRN, words)
        t, g = cfg["grn"]["transitions"][name], cfg["grn"]
        assert words[words.index("--l2") + 1] == repr(float(g["l2"]))
        if t["source"]["labels"]:
            i = words.index("--source-labels")
            assert words[i + 1:i + 1 + len(t["source"]["labels"])] == t["source"]["labels"]
        assert grn_prior_path(cfg, name).endswith(".csv")
    check_argv(FIGURES, shlex.split(grn_figures_command(cfg)))


def test_transition_prior_overrides_the_global_one():
    cfg = _validated(load_tiny_config())
    name = grn_runs(cfg)[0]
    cfg["grn"]["transitions"][name]["prior"] = "trrust"
    words = shlex.split(grn_command(cfg, name))
    assert words[words.index("--prior") + 1] == "trrust"
    assert grn_prior_path(cfg, name).endswith("trrust_rawdata.human.tsv")


def test_options_come_from_the_schema():
    schema = load_schema("grn")
    opts = GRN.defaults()
    assert opts.l2 == schema["properties"]["l2"]["default"]
    assert opts.mlp_hidden == schema["properties"]["mlp"]["properties"]["hidden"]["default"]
    assert FIGURES.defaults().heatmap_edges == schema["properties"]["heatmap_edges"]["default"]


@pytest.mark.parametrize("flag, value, mentions", [
    ("--test-fraction", "1.5", "--test-fraction"),
    ("--cv-folds", "1", "--cv-folds"),
    ("--pairing", "greedy", "--pairing"),
    ("--l1-grid", "-0.1", "--l1-grid"),
])
def test_bad_option_is_one_line(tmp_path, flag, value, mentions):
    o = outputs(tmp_path)
    proc = run_cli(grn, *grn_args(tmp_path / "x.h5ad", tmp_path / "p.csv", o), flag, value)
    assert proc.returncode == 2
    assert_clean_failure(proc, mentions=mentions, outputs=o.values())


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One grn step run on the toy data: its output paths."""
    d = tmp_path_factory.mktemp("grn_fit")
    h5, prior, _ = write_toy(d)
    o = outputs(d)
    proc = run_cli(grn, *grn_args(h5, prior, o), "--name", "toy")
    assert proc.returncode == 0, proc.stderr
    return o


def test_figures_png_and_pdf(fitted, tmp_path):
    figs = {k: tmp_path / f"toy_{k}.png" for k in ("heatmap", "residuals", "signs")}
    proc = run_cli(grn_figures, "--weights", fitted["weights"], "--heatmap-edges", 10,
                   *[w for k, p in figs.items() for w in (f"--{k}", p)])
    assert proc.returncode == 0, proc.stderr
    for p in figs.values():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"


def test_figures_bad_weights_fail_cleanly(fitted, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    figs = {k: tmp_path / f"x_{k}.png" for k in ("heatmap", "residuals", "signs")}
    proc = run_cli(grn_figures, "--weights", bad, *[w for k, p in figs.items() for w in (f"--{k}", p)])
    assert_clean_failure(proc, mentions="bad.npz", outputs=[*figs.values(), *(p.with_suffix(".pdf") for p in figs.values())])


def test_summary_wide_table(fitted, tmp_path):
    other = tmp_path / "other.tsv"
    m = pd.read_csv(fitted["metrics"], sep="\t")
    m.assign(transition="toy2").to_csv(other, sep="\t", index=False)
    out = tmp_path / "summary.tsv"
    assert run_cli(grn_summary, "--metrics", fitted["metrics"], other, "--output", out).returncode == 0
    wide = pd.read_csv(out, sep="\t")
    assert wide["transition"].tolist() == ["toy", "toy2"]
    assert "linear:r2_median" in wide.columns and "data:n_prior_edges" in wide.columns


def test_summary_duplicate_transition_fails_cleanly(fitted, tmp_path):
    out = tmp_path / "summary.tsv"
    proc = run_cli(grn_summary, "--metrics", fitted["metrics"], fitted["metrics"], "--output", out)
    assert_clean_failure(proc, mentions="more than one metrics file", outputs=[out])
