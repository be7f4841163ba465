"""Which cells the NB mixture and its Leiden baseline are scored on: the label column (``label_key``), a subset
of labels (``labels_keep``), integer-coded labels, and a warning with NaN metrics when no cell can be scored."""

from __future__ import annotations

import copy
import shlex

import anndata as ad
import numpy as np
import pandas as pd

from conftest import REPO, run_cli
from scfactor.nbmix.cli import FIT, LEIDEN, nbmix_figures, nbmix_fit, nbmix_leiden
from scfactor.nbmix.simulate import simulate_anndata
from scfactor.nbmix.smk import fit_command, leiden_command

N = 40
WARNING = "no cell scored (0 of 40 cells)"


def _sim(tmp_path, *, column="label", codes=False, layer=True, drop_label=False):
    """The 40-cell, 3-component simulation; labels in obs[column] (integer codes 0..2 with ``codes``)."""
    a = simulate_anndata(N, 60, 3, 1e4, 2, "sim")
    truth = a.obs["label"].astype(str).str[1:].astype(int).to_numpy()
    if drop_label or column != "label":
        del a.obs["label"]
    if not drop_label:
        a.obs[column] = truth if codes else pd.Categorical([f"c{c}" for c in truth])
    if not layer:
        del a.layers["counts"]
    path = tmp_path / "sim.h5ad"
    a.write_h5ad(path)
    return path, truth


def _fit(tmp_path, inp, *extra):
    out = tmp_path / "fit"
    proc = run_cli(nbmix_fit, "--input", inp, "--k", 3, "--nrep", 1, "--max-iters", 20, "--device", "cpu",
                   "--output", out / "o.h5ad", "--metrics", out / "m.tsv", "--trace", out / "t.tsv", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, pd.read_csv(out / "m.tsv", sep="\t").iloc[0], out


def test_label_key_names_another_column(tmp_path):
    """Labels in obs['cell_type'] are scored with --label-key cell_type, without preprocessing again."""
    inp, _ = _sim(tmp_path, column="cell_type")
    proc, m, _ = _fit(tmp_path, inp, "--label-key", "cell_type")
    assert m["n_scored"] == N and m["ari"] > 0.9 and m["label_key"] == "cell_type"
    assert "WARNING" not in proc.stderr


def test_labels_keep_scores_a_subset(tmp_path):
    inp, truth = _sim(tmp_path)
    proc, m, _ = _fit(tmp_path, inp, "--labels-keep", "c0", "c2")
    assert m["n_scored"] == int(np.isin(truth, [0, 2]).sum()) and m["n_labels"] == 2
    assert "WARNING" not in proc.stderr


def test_integer_labels_are_selected_by_text_or_number(tmp_path):
    """An integer-coded label column: --labels-keep 1 selects the cells coded 1 (compared as text)."""
    inp, truth = _sim(tmp_path, codes=True)
    proc, m, out = _fit(tmp_path, inp, "--labels-keep", "1")
    assert m["n_scored"] == int((truth == 1).sum()) and m["n_labels"] == 1
    assert list(ad.read_h5ad(out / "o.h5ad").uns["nbmix"]["labels_keep"]) == ["1"]
    opts = FIT.defaults(k=3, labels_keep=(1,))  # the library takes integers too
    assert opts.labels_keep == (1,)


def test_layer_x_without_labels_warns(tmp_path):
    """The issue's case: a plain count file (--layer X) has no obs['label']; the default --labels truth used
    to score nothing and say nothing. Now one warning line names the cells and the missing column."""
    inp, _ = _sim(tmp_path, layer=False, drop_label=True)
    proc, m, _ = _fit(tmp_path, inp, "--layer", "X")
    lines = [ln for ln in proc.stderr.splitlines() if WARNING in ln]
    assert len(lines) == 1 and "no obs column 'label'" in lines[0] and "label_key" in lines[0], proc.stderr
    assert m["n_scored"] == 0 and np.isnan(m["ari"]) and np.isnan(m["accuracy_hungarian"])


def test_all_missing_labels_warn(tmp_path):
    a = simulate_anndata(N, 60, 3, 1e4, 2, "sim")
    a.obs["label"] = pd.Categorical([np.nan] * (N - 1) + ["unlabelled"])
    inp = tmp_path / "sim.h5ad"
    a.write_h5ad(inp)
    proc, m, _ = _fit(tmp_path, inp)
    assert WARNING in proc.stderr and "labels no cell" in proc.stderr
    assert m["n_scored"] == 0 and np.isnan(m["nmi"])


def test_labels_keep_matching_nothing_warns(tmp_path):
    inp, _ = _sim(tmp_path)
    proc, m, _ = _fit(tmp_path, inp, "--labels-keep", "C0")
    assert WARNING in proc.stderr and "labels_keep" in proc.stderr and "c0, c1, c2" in proc.stderr
    assert m["n_scored"] == 0 and np.isnan(m["ari"])


def test_labels_keep_with_an_unknown_value_warns_and_scores_the_rest(tmp_path):
    inp, truth = _sim(tmp_path)
    proc, m, _ = _fit(tmp_path, inp, "--labels-keep", "c0", "typo")
    assert "labels_keep value(s) typo label no cell" in proc.stderr
    assert f"scoring {int((truth == 0).sum())} of {N} cells" in proc.stderr and m["n_scored"] == (truth == 0).sum()


def test_labels_none_says_nothing(tmp_path):
    inp, _ = _sim(tmp_path, drop_label=True)
    proc, m, _ = _fit(tmp_path, inp, "--labels", "none")
    assert "WARNING" not in proc.stderr and m["n_scored"] == 0 and np.isnan(m["ari"])


def test_leiden_and_figures_use_the_label_column(tmp_path):
    """The baseline is scored on the same column and subset; the figures read them from the fit's uns."""
    inp, truth = _sim(tmp_path, column="cell_type")
    _, _, fit_out = _fit(tmp_path, inp, "--label-key", "cell_type", "--labels-keep", "c1", "c2")
    lei = [tmp_path / "l.h5ad", tmp_path / "l.tsv"]
    proc = run_cli(nbmix_leiden, "--input", inp, "--label-key", "cell_type", "--labels-keep", "c1", "c2",
                   "--n-pcs", 5, "--output", lei[0], "--metrics", lei[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = pd.read_csv(lei[1], sep="\t").iloc[0]
    assert m["n_scored"] == int(np.isin(truth, [1, 2]).sum()) and m["label_key"] == "cell_type"
    pngs = [tmp_path / f"{n}.png" for n in ("u", "c", "p")]
    proc = run_cli(nbmix_figures, "--nbmix", fit_out / "o.h5ad", "--leiden", lei[0], "--umap", pngs[0],
                   "--correlation", pngs[1], "--poisson-nb", pngs[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(p.exists() and p.with_suffix(".pdf").exists() for p in pngs) and "WARNING" not in proc.stderr


def test_leiden_warns_without_labels(tmp_path):
    inp, _ = _sim(tmp_path)
    lei = [tmp_path / "l.h5ad", tmp_path / "l.tsv"]
    proc = run_cli(nbmix_leiden, "--input", inp, "--label-key", "celltype", "--n-pcs", 5, "--output", lei[0],
                   "--metrics", lei[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert WARNING in proc.stderr and "(leiden)" in proc.stderr
    assert np.isnan(pd.read_csv(lei[1], sep="\t").loc[0, "ari"])


def test_rule_command_lines_carry_label_options():
    import yaml
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    run = next(iter(config["nbmix"]["runs"]))
    config["nbmix"]["runs"][run].update(label_key="cell_type", labels_keep=["B cells", 3])
    for words in (shlex.split(fit_command(config, run)), shlex.split(leiden_command(config, run))):
        assert words[words.index("--label-key") + 1] == "cell_type"
        i = words.index("--labels-keep")
        assert words[i + 1:i + 3] == ["B cells", "3"]
    assert LEIDEN.defaults().label_key == "label" and LEIDEN.defaults().labels_keep == ()



def test_leiden_umap_on_a_subsample_and_its_figure(tmp_path):
    """Above ``--umap-max-cells`` the baseline's UMAP covers a random subsample (marked in obs, NaN elsewhere),
    its clusters and metrics all cells; the UMAP figure shows the subsample and says so."""
    import anndata as ad

    from scfactor.nbmix import plots
    n = 300
    sim = simulate_anndata(n, 60, 3, 1e4, 2, "sim")
    inp = tmp_path / "sim.h5ad"
    sim.write_h5ad(inp)
    lei = [tmp_path / "l.h5ad", tmp_path / "l.tsv"]
    proc = run_cli(nbmix_leiden, "--input", inp, "--n-pcs", 5, "--umap-max-cells", 100, "--output", lei[0],
                   "--metrics", lei[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"UMAP on a random subsample of 100 of {n} cells" in proc.stderr
    a = ad.read_h5ad(lei[0])
    shown = np.isfinite(a.obsm["X_umap"]).all(1)
    assert shown.sum() == 100 and np.array_equal(a.obs["umap_sample"].to_numpy(), shown)
    assert dict(a.uns["umap_subsample"]) == {"cells": 100, "of": n}
    assert a.obs["leiden"].notna().all() and pd.read_csv(lei[1], sep="\t").iloc[0]["n_cells"] == n
    truth = sim.obs["label"].astype(str).to_numpy()
    fig = plots.umap_triptych(a.obsm["X_umap"], truth, "label", a.obs["leiden"].to_numpy(), truth, "sim")
    assert f"random subsample of 100 of {n:,} cells" in fig._suptitle.get_text()
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 100
