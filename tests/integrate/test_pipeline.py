"""The integrate step: counts (batch and online), neumf, gene sets, and one-line failures on bad inputs."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import assert_clean_failure, run_cli
from scfactor.integrate.cli import integrate, integrate_figures
from scfactor.integrate.pipeline import BackedSource, load_counts
from scfactor.integrate.model import library_normalize
from scfactor.integrate.snn import leiden_snn


FAST = ["--k", "4", "--max-iters", "5", "--agreement-dims", "4", "--min-cells", "5", "--knn-k", "5",
        "--n-neighbors", "8", "--device", "cpu", "--nrep", "1", "--leiden-starts", "2"]


def _neumf_files(tmp_path, sim, genes_b2=None, negative=False):
    a = ad.read_h5ad(sim)
    paths = []
    for name in ("b1", "b2"):
        sub = a[a.obs["batch"] == name]
        rng = np.random.default_rng(len(paths))
        dense = sub.X.toarray().astype(np.float32) + rng.random(sub.shape).astype(np.float32)
        if negative and name == "b2":
            dense[0, 0] = -1.0
        out = ad.AnnData(X=sp.csr_matrix(sub.X), obs=pd.DataFrame({"batch": name, "label": sub.obs["label"].to_numpy()},
                                                               index=sub.obs_names),
                         var=pd.DataFrame(index=sub.var_names))
        out.layers["neumf"] = dense
        if name == "b2" and genes_b2 is not None:
            out.var_names = genes_b2
        p = tmp_path / f"{name}.h5ad"
        out.write_h5ad(p)
        paths.append(p)
    return paths


def test_script_neumf_source(tmp_path, sim):
    paths = _neumf_files(tmp_path, sim)
    out, met = tmp_path / "out.h5ad", tmp_path / "m.tsv"
    proc = run_cli(integrate, "--source", "neumf", "--input", *paths, *FAST,
                      "--output", out, "--metrics", met)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = ad.read_h5ad(out)
    assert a.obsm["X_inmf"].shape == (500, 4) and a.obsm["X_inmf_norm"].shape == (500, 4)
    assert a.obsm["X_umap"].shape == (500, 2)
    assert {"W", "V_b1", "V_b2"} <= set(a.varm) and a.varm["W"].shape == (200, 4)
    assert a.uns["inmf"]["source"] == "neumf"
    tr = np.asarray(a.uns["inmf"]["objective_trace"])
    assert np.all(np.diff(tr) <= 1e-9 * tr[1:])
    t = pd.read_csv(met, sep="\t").set_index(["metric", "batch"])
    assert t.loc[("n_labelled", "b1"), "value"] == 300 and t.loc[("n_labelled", "b2"), "value"] == 200
    assert t.loc[("alignment", "all"), "value"] > t.loc[("alignment_raw", "all"), "value"]
    assert 0 < t.loc[("ari", "all"), "value"] <= 1
    # the joint clusters are LIGER's SNN + multi-start Leiden of the normalised loadings, with the step's settings
    o = a.uns["inmf"]["params"]
    expect = leiden_snn(a.obsm["X_inmf_norm"].astype(np.float64), k=o["n_neighbors"], prune=o["snn_prune"],
                        resolution=o["leiden_resolution"], n_starts=o["leiden_starts"], seed=o["seed"])
    assert (a.obs["leiden"].astype(int).to_numpy() == expect).all()


@pytest.mark.parametrize("case", ["one_batch", "no_shared_genes", "negative", "k_too_large"])
def test_bad_inputs_fail_cleanly(tmp_path, sim, case):
    out, met = tmp_path / "out.h5ad", tmp_path / "m.tsv"
    if case == "one_batch":
        args, mention = ["--input", sim, "--layer", "X", "--batches", "b1"], str(sim)
    elif case == "no_shared_genes":
        paths = _neumf_files(tmp_path, sim, genes_b2=[f"other{i}" for i in range(200)])
        args, mention = ["--source", "neumf", "--input", *paths], "shares no gene"
    elif case == "negative":
        paths = _neumf_files(tmp_path, sim, negative=True)
        args, mention = ["--source", "neumf", "--input", *paths], "negative"
    else:  # 200 genes, k = 250 (argparse keeps the last --k)
        args, mention = ["--input", sim, "--layer", "X", "--genes", "all"], "not smaller than the number of genes"
    extra = ["--k", "250"] if case == "k_too_large" else []
    proc = run_cli(integrate, *args, *FAST, *extra, "--output", out, "--metrics", met)
    assert_clean_failure(proc, mentions=mention, outputs=[out, met])


def test_script_online_mode(tmp_path, sim):
    out, met = tmp_path / "on.h5ad", tmp_path / "on.tsv"
    proc = run_cli(integrate, "--input", sim, "--layer", "X", "--genes", "all", "--mode", "online",
                      "--online-minibatch", "128", "--online-epochs", "3", *FAST, "--output", out, "--metrics", met)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "online epoch 3/3" in proc.stderr
    a = ad.read_h5ad(out)
    assert a.uns["inmf"]["mode"] == "online" and a.obsm["X_inmf"].shape == (500, 4)
    t = pd.read_csv(met, sep="\t").set_index(["metric", "batch"])["value"]
    assert t[("alignment", "all")] > t[("alignment_raw", "all")]


@pytest.mark.parametrize("batch_max_cells,expected", [(500, "batch"), (499, "online")])
def test_auto_mode_is_batch_up_to_batch_max_cells_then_online(tmp_path, sim, batch_max_cells, expected):
    """The default mode (auto) fits the 500-cell file in batch mode up to batch_max_cells = 500 cells and online
    above; the output records the mode used, the log says why."""
    out, met = tmp_path / "auto.h5ad", tmp_path / "auto.tsv"
    proc = run_cli(integrate, "--input", sim, "--layer", "X", "--genes", "all", "--batch-max-cells", batch_max_cells,
                   "--online-minibatch", "128", "--online-epochs", "2", *FAST, "--output", out, "--metrics", met)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"mode auto: {expected} mode for 500 cells" in proc.stderr
    assert ad.read_h5ad(out).uns["inmf"]["mode"] == expected


def test_auto_mode_runs_the_neumf_source_in_batch_mode():
    from types import SimpleNamespace

    from scfactor.integrate.pipeline import resolve_mode
    opts = SimpleNamespace(mode="auto", batch_max_cells=1)
    assert resolve_mode("neumf", ["a.h5ad", "b.h5ad"], opts) == "batch"
    assert resolve_mode("counts", ["a.h5ad"], SimpleNamespace(mode="online", batch_max_cells=1)) == "online"


# ------------------------------------------------------------------ gene sets (all | liger | hvg | file)
def _preprocessed(tmp_path, sim):
    """The simulation as a preprocessed file: layers['counts'], gene flags for liger (first 120 genes) and
    hvg (every other gene)."""
    a = ad.read_h5ad(sim)
    a.layers["counts"] = a.X.copy()
    a.var["liger_selected"] = np.arange(a.n_vars) < 120
    a.var["highly_variable"] = np.arange(a.n_vars) % 2 == 0
    path = tmp_path / "pre.h5ad"
    a.write_h5ad(path)
    return path, a


@pytest.mark.parametrize("genes, n", [("all", 200), ("liger", 120), ("hvg", 100), ("file", 3)])
def test_gene_sets_after_library_size_over_all_genes(tmp_path, sim, genes, n):
    path, a = _preprocessed(tmp_path, sim)
    if genes == "file":
        (tmp_path / "genes.txt").write_text("\n".join(a.var_names[[5, 1, 7]]) + "\n")
        genes = str(tmp_path / "genes.txt")
    b = load_counts(path, (), layer="counts", genes=genes, label_key="label")
    assert b.names == ["b1", "b2"] and len(b.genes) == n
    keep = a.var_names.isin(b.genes)
    first = a.X[(a.obs["batch"] == "b1").to_numpy()]
    np.testing.assert_allclose(b.mats[0].toarray(), library_normalize(first)[:, keep].toarray())
    src = BackedSource(path, (), "counts", genes, "label")  # online mode reads the same genes
    try:
        assert list(src.genes) == list(b.genes)
    finally:
        src.close()


def test_cli_takes_genes_hvg(tmp_path, sim):
    path, _ = _preprocessed(tmp_path, sim)
    out, met = tmp_path / "out.h5ad", tmp_path / "m.tsv"
    proc = run_cli(integrate, "--input", path, "--genes", "hvg", *FAST, "--output", out, "--metrics", met)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = ad.read_h5ad(out)
    assert a.n_vars == 100 and a.uns["inmf"]["params"]["genes"] == "hvg"


@pytest.mark.parametrize("genes, mention", [("hvg", "highly_variable"), ("missing.txt", "missing.txt")])
def test_missing_gene_set_fails_cleanly(tmp_path, sim, genes, mention):
    out, met = tmp_path / "out.h5ad", tmp_path / "m.tsv"
    for mode in ("batch", "online"):
        proc = run_cli(integrate, "--input", sim, "--layer", "X", "--genes", genes, "--mode", mode, *FAST,
                       "--output", out, "--metrics", met)
        assert_clean_failure(proc, mentions=mention, outputs=[out, met])


# ------------------------------------------------------------------ figures
def test_figures_write_png_and_pdf(tmp_path, sim):
    out, met = tmp_path / "out.h5ad", tmp_path / "m.tsv"
    proc = run_cli(integrate, "--input", sim, "--layer", "X", "--genes", "all", *FAST, "--output", out,
                   "--metrics", met)
    assert proc.returncode == 0, proc.stderr[-3000:]
    umap, bars = tmp_path / "fig" / "u.png", tmp_path / "fig" / "m.png"
    proc = run_cli(integrate_figures, "--dataset", "sim", "--run", f"counts={out}", "--metrics", f"counts={met}",
                   "--umap", umap, "--bars", bars)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for p in (umap, bars):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.with_suffix(".pdf").stat().st_size > 1000
    bad = run_cli(integrate_figures, "--dataset", "sim", "--run", f"counts={met}", "--metrics", f"counts={met}",
                  "--umap", tmp_path / "x.png", "--bars", tmp_path / "y.png")
    assert_clean_failure(bad, mentions=str(met), outputs=[tmp_path / "x.png", tmp_path / "y.png"])



def _run_online(tmp_path, sim, name, *extra):
    out, met = tmp_path / f"{name}.h5ad", tmp_path / f"{name}.tsv"
    proc = run_cli(integrate, "--input", sim, "--layer", "X", "--genes", "all", "--mode", "online", "--online-minibatch", "64", *FAST, *extra,
                   "--output", out, "--metrics", met)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return ad.read_h5ad(out), pd.read_csv(met, sep="\t").set_index(["metric", "batch"])["value"], out


def test_umap_and_metrics_subsample(tmp_path, sim):
    """UMAP on a subsample (umap_max_cells), alignment / agreement on one (metrics_max_cells); the rest as the full run."""
    full, tf, _ = _run_online(tmp_path, sim, "full")
    sub, ts, path = _run_online(tmp_path, sim, "sub", "--umap-max-cells", "150", "--metrics-max-cells", "120")
    # the fit, the stored counts and the clusters do not depend on the subsamples
    assert (full.X != sub.X).nnz == 0 and full.X.dtype == np.float32
    np.testing.assert_array_equal(full.obsm["X_inmf_norm"], sub.obsm["X_inmf_norm"])
    assert (full.obs["leiden"] == sub.obs["leiden"]).all()
    for m in ("ari", "nmi", "n_labelled", "n_clusters"):
        pd.testing.assert_series_equal(tf.xs(m, drop_level=False), ts.xs(m, drop_level=False))
    # UMAP: 150 cells embedded, the others NaN, marked and recorded; the full run has no marks
    xy = sub.obsm["X_umap"]
    shown = np.isfinite(xy).all(1)
    assert shown.sum() == 150 and (sub.obs["umap_sample"].to_numpy() == shown).all()
    assert dict(sub.uns["umap_subsample"]) == {"cells": 150, "of": 500} and "connectivities" not in sub.obsp
    assert np.isfinite(full.obsm["X_umap"]).all() and "umap_sample" not in full.obs
    # alignment / agreement on 60 cells per batch: other estimates of the same scores
    for m in ("alignment_raw", "alignment", "agreement"):
        assert ts[(m, "all")] != tf[(m, "all")] and 0 <= ts[(m, "all")] <= 2
    assert ts[("alignment", "all")] > ts[("alignment_raw", "all")]
    # the figure draws the subsample and says so
    u, bars = tmp_path / "u.png", tmp_path / "b.png"
    proc = run_cli(integrate_figures, "--run", f"counts={path}", "--metrics", f"counts={tmp_path / 'sub.tsv'}",
                   "--dataset", "sim", "--umap", u, "--bars", bars)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert u.stat().st_size > 0
    from scfactor.integrate import plots
    assert "random subsample of 150 of 500 cells" in plots.umap_figure({"counts": sub}, "sim")._suptitle.get_text()
    assert "subsample" not in plots.umap_figure({"counts": full}, "sim")._suptitle.get_text()
