"""Which cells ARI / NMI of the integrate step are computed on: the label column (``label_key``), a subset of
labels (``labels_keep``), integer-coded labels, and a warning with NaN scores when no cell can be scored."""

from __future__ import annotations

import copy
import shlex

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, run_cli
from scfactor.integrate.cli import INTEGRATE, integrate
from scfactor.integrate.smk import integrate_command

FAST = ["--k", "4", "--max-iters", "5", "--agreement-dims", "4", "--min-cells", "5", "--knn-k", "5",
        "--n-neighbors", "8", "--device", "cpu", "--layer", "X", "--genes", "all", "--nrep", "1", "--leiden-starts", "2"]


def _relabelled(tmp_path, sim, column, codes=False):
    """The session simulation with its planted groups moved to obs[column] (integer codes with ``codes``)."""
    a = ad.read_h5ad(sim)
    groups = a.obs["label"].astype(str).str[1:].astype(int).to_numpy()
    del a.obs["label"]
    if column:
        a.obs[column] = groups if codes else pd.Categorical([f"g{g}" for g in groups])
    path = tmp_path / "relabelled.h5ad"
    a.write_h5ad(path)
    return path, groups, a.obs["batch"].astype(str).to_numpy()


def _run(tmp_path, inp, *extra):
    out, met = tmp_path / "out.h5ad", tmp_path / "m.tsv"
    proc = run_cli(integrate, "--input", inp, *FAST, *extra, "--output", out, "--metrics", met)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, pd.read_csv(met, sep="\t").set_index(["metric", "batch"])["value"], out


def test_label_key_names_another_column(tmp_path, sim):
    inp, groups, _ = _relabelled(tmp_path, sim, "cell_type")
    proc, t, out = _run(tmp_path, inp, "--label-key", "cell_type")
    assert t[("n_labelled", "all")] == len(groups) and 0 < t[("ari", "all")] <= 1
    assert "WARNING" not in proc.stderr
    assert "cell_type" in ad.read_h5ad(out).obs  # the label column is kept under its own name


def test_missing_label_column_warns_and_scores_nan(tmp_path, sim):
    inp, groups, _ = _relabelled(tmp_path, sim, None)
    proc, t, _ = _run(tmp_path, inp)
    lines = [ln for ln in proc.stderr.splitlines() if "no cell scored" in ln]
    assert len(lines) == 1 and f"0 of {len(groups)} cells" in lines[0] and "no obs column 'label'" in lines[0]
    for scope in ("all", "b1", "b2"):
        assert np.isnan(t[("ari", scope)]) and np.isnan(t[("nmi", scope)]) and t[("n_labelled", scope)] == 0


def test_labels_keep_scores_a_subset(tmp_path, sim):
    inp, groups, batch = _relabelled(tmp_path, sim, "label")
    proc, t, _ = _run(tmp_path, inp, "--labels-keep", "g0", "g1")
    keep = np.isin(groups, [0, 1])
    assert t[("n_labelled", "all")] == keep.sum() and t[("n_labelled", "b2")] == (keep & (batch == "b2")).sum()
    assert "WARNING" not in proc.stderr


def test_integer_labels_and_labels_keep_matching_nothing(tmp_path, sim):
    """Integer-coded labels are selected by their number; a subset that matches nothing warns (NaN scores)."""
    inp, groups, _ = _relabelled(tmp_path, sim, "cluster", codes=True)
    _, t, _ = _run(tmp_path, inp, "--label-key", "cluster", "--labels-keep", "2")
    assert t[("n_labelled", "all")] == (groups == 2).sum()
    proc, t, _ = _run(tmp_path, inp, "--label-key", "cluster", "--labels-keep", "g2")
    assert "no cell scored" in proc.stderr and "labels_keep" in proc.stderr and np.isnan(t[("ari", "all")])


def test_online_mode_reads_the_label_column(tmp_path, sim):
    inp, groups, _ = _relabelled(tmp_path, sim, "cell_type")
    _, t, _ = _run(tmp_path, inp, "--label-key", "cell_type", "--mode", "online", "--online-minibatch", "128",
                   "--online-epochs", "2")
    assert t[("n_labelled", "all")] == len(groups)


@pytest.mark.parametrize("flag, value", [("--umap-min-dist", "1.5"), ("--umap-min-dist", "-0.1")])
def test_out_of_range_option_is_one_line(tmp_path, sim, flag, value):
    proc = run_cli(integrate, "--input", sim, flag, value, "--output", tmp_path / "o.h5ad", "--metrics",
                   tmp_path / "m.tsv")
    assert proc.returncode == 2 and "out of range" in proc.stderr and flag in proc.stderr
    assert not (tmp_path / "o.h5ad").exists()


def test_rule_command_line_carries_label_options():
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    config["integrate"].update(label_key="cell_type", labels_keep=["CD14+ Monocytes", 7])
    dataset = config["integrate"]["datasets"][0]
    words = shlex.split(integrate_command(config, dataset, "counts"))
    assert words[words.index("--label-key") + 1] == "cell_type"
    i = words.index("--labels-keep")
    assert words[i + 1:i + 3] == ["CD14+ Monocytes", "7"]
    assert INTEGRATE.defaults().label_key == "label" and INTEGRATE.defaults().labels_keep == ()
