"""GRN inputs that used to fail silently: integer-coded labels (never selected) and prior gene names in another
case than the data's (7 of 18 TFs matched without a word)."""

from __future__ import annotations

import copy
import logging
import shlex

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import assert_clean_failure, load_tiny_config, run_cli
from grn.data import grn_args, outputs, write_prior, write_toy
from scfactor.grn.cli import GRN, grn
from scfactor.grn.inputs import StateSpec, match_prior_names, select_state
from scfactor.grn.smk import grn_command, grn_runs
from grn.test_cli import _validated


@pytest.fixture
def toy(tmp_path):
    return write_toy(tmp_path)


def _metrics(o):
    m = pd.read_csv(o["metrics"], sep="\t")
    return m.set_index("metric")["value"]


def _relabel(h5, d, values):
    """The toy data with obs['cluster'] = ``values`` (one per cell) and no obs['label']."""
    a = ad.read_h5ad(h5)
    a.obs["cluster"] = values
    del a.obs["label"]
    path = d / "relabelled.h5ad"
    a.write_h5ad(path)
    return path


def _with_states(args, source, target, *extra):
    args = list(args)
    args[args.index("--source-labels") + 1] = source
    args[args.index("--target-labels") + 1] = target
    return [*args, *extra]


# --------------------------------------------------------------------------- integer labels
def test_integer_labels_are_selected(toy):
    """obs['cluster'] holds integers 0 / 1; the states name them as the text a config or command line gives."""
    h5, prior, d = toy
    n = ad.read_h5ad(h5).n_obs
    path = _relabel(h5, d, np.where(np.arange(n) < n // 2, 0, 1))
    o = outputs(d)
    proc = run_cli(grn, *_with_states(grn_args(path, prior, o), "0", "1", "--label-key", "cluster"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = _metrics(o)
    assert int(m["n_cells_source"]) == n // 2 and int(m["n_cells_target"]) == n - n // 2


def test_float_coded_labels_with_missing_values_are_selected(toy):
    """A column of integer codes made float by missing values (3.0, NaN) is selected by 3."""
    h5, prior, d = toy
    n = ad.read_h5ad(h5).n_obs
    codes = np.where(np.arange(n) < n // 2, 3.0, 7.0)
    codes[:5] = np.nan
    path = _relabel(h5, d, codes)
    o = outputs(d)
    proc = run_cli(grn, *_with_states(grn_args(path, prior, o), "3", "7", "--label-key", "cluster"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(_metrics(o)["n_cells_source"]) == n // 2 - 5


def test_select_state_compares_labels_as_text():
    obs = pd.DataFrame({"label": [1, 2, 2, 3], "batch": [10, 10, 20, 20]})
    assert select_state(obs, StateSpec("A", (2,), ()), "x").tolist() == [False, True, True, False]
    assert select_state(obs, StateSpec("A", ("2",), ("20",)), "x").tolist() == [False, False, True, False]


def test_integer_labels_in_the_config_are_valid_and_passed_as_text():
    cfg = load_tiny_config()
    name = grn_runs(cfg)[0]
    cfg["grn"]["transitions"][name]["source"] = {"labels": [0, "1"]}
    cfg = _validated(cfg)  # the schema accepts integers
    words = shlex.split(grn_command(cfg, name))
    i = words.index("--source-labels")
    assert words[i + 1:i + 3] == ["0", "1"]
    assert GRN.defaults(source_labels=(0,)).source_labels == (0,)


# --------------------------------------------------------------------------- prior gene names in another case
def _recased(h5, d, n_tfs):
    """The toy data with the first ``n_tfs`` TF names written in another case (TF0 -> tf0)."""
    a = ad.read_h5ad(h5)
    a.var_names = [g.lower() if g.startswith("TF") and int(g[2:]) < n_tfs else g for g in a.var_names]
    path = d / "recased.h5ad"
    a.write_h5ad(path)
    return path


def test_mixed_case_exact_warns_with_both_counts(toy):
    h5, prior, d = toy
    path = _recased(h5, d, 4)
    o = outputs(d)
    proc = run_cli(grn, *grn_args(path, prior, o))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if "ignoring case" in ln]
    assert len(lines) == 1 and "WARNING" in lines[0], proc.stderr
    assert "exact gene names match 2 of its 6 TFs" in lines[0] and "ignoring case matches 6 TFs" in lines[0]
    assert "match_case: insensitive" in lines[0]
    assert int(_metrics(o)["n_tfs"]) <= 2


def test_mixed_case_insensitive_uses_every_tf(toy):
    h5, prior, d = toy
    path = _recased(h5, d, 4)
    o = outputs(d)
    proc = run_cli(grn, *grn_args(path, prior, o), "--match-case", "insensitive")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING" not in proc.stderr and "ignoring case matches 6 TFs" in proc.stderr
    assert int(_metrics(o)["n_tfs"]) == 6
    edges = pd.read_csv(o["edges"], sep="\t")
    assert {"tf0", "tf3", "TF4"} <= set(edges["tf"])  # the data's spelling


def test_prior_in_another_case_only_fails_with_a_hint_or_matches_on_request(toy):
    h5, _, d = toy
    prior = write_prior(d / "p.csv", [("tf0", "A", "g1", 1.0), ("tf1", "A", "g2", -1.0), ("tf1", "A", "g3", 1.0)])
    o = outputs(d)
    proc = run_cli(grn, *grn_args(h5, prior, o))
    assert_clean_failure(proc, mentions="match_case: insensitive", outputs=o.values())
    proc = run_cli(grn, *grn_args(h5, prior, o), "--match-case", "insensitive")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(_metrics(o)["n_tfs"]) == 2


def test_match_prior_names_units(caplog):
    prior = pd.DataFrame({"tf": ["STAT1", "stat2", "Irf9", "IRF9"], "target": ["A", "B", "b", "C"],
                          "sign": [1, 1, 1, -1]})
    genes = ["STAT1", "Stat2", "STAT2", "Irf9", "A", "B", "c"]
    with caplog.at_level(logging.INFO, logger="scfactor"):
        same = match_prior_names(prior, genes, "exact", "p.csv", "d.h5ad")
    assert same is prior
    # stat2 equals two genes up to case: unmatched; IRF9 -> Irf9 (merged with the exact Irf9 edges); b -> B, C -> c
    assert "exact gene names match 2 of its 4 TFs and 2 of its 4 targets" in caplog.text
    assert "ignoring case matches 3 TFs and 4 targets" in caplog.text
    out = match_prior_names(prior, genes, "insensitive", "p.csv", "d.h5ad")
    assert list(map(tuple, out.to_numpy())) == [("Irf9", "B", 1), ("Irf9", "c", -1), ("STAT1", "A", 1),
                                               ("stat2", "B", 1)]
    with pytest.raises(ValueError, match="unknown match_case"):
        match_prior_names(prior, genes, "upper", "p.csv", "d.h5ad")


def test_match_case_is_validated_in_the_config():
    from snakemake.exceptions import WorkflowError
    cfg = copy.deepcopy(load_tiny_config())
    cfg["grn"]["match_case"] = "loose"
    with pytest.raises(WorkflowError):
        _validated(cfg)
