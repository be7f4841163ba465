"""The nbmix steps run in-process: output contents, determinism, one-line failures on bad inputs."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import assert_clean_failure, run_cli
from scfactor.nbmix.cli import nbmix_figures, nbmix_fit, nbmix_leiden, nbmix_summary, simulate_nbmix
from scfactor.nbmix.pipeline import METRICS_COLUMNS
from scfactor.nbmix.simulate import simulate_anndata


def _write(tmp_path, x, name="in.h5ad", labels=None):
    a = ad.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame(index=[f"c{i}" for i in range(x.shape[0])]),
                   var=pd.DataFrame(index=[f"g{j}" for j in range(x.shape[1])]))
    a.layers["counts"] = a.X.copy()
    if labels is not None:
        a.obs["label"] = pd.Categorical(labels)
    path = tmp_path / name
    a.write_h5ad(path)
    return path


def _fit_args(inp, out, k=2, extra=()):
    return ["--input", inp, "--k", k, "--output", out / "o.h5ad", "--metrics", out / "m.tsv",
            "--trace", out / "t.tsv", "--device", "cpu", *extra]


def _outputs(out):
    return [out / "o.h5ad", out / "m.tsv", out / "t.tsv"]


def test_script_rejects_non_integer_counts(tmp_path):
    x = np.random.default_rng(0).poisson(3, size=(20, 10)).astype(float)
    x[2, 3] = 1.5
    inp = _write(tmp_path, x)
    proc = run_cli(nbmix_fit, *_fit_args(inp, tmp_path))
    assert_clean_failure(proc, mentions=str(inp), outputs=_outputs(tmp_path))
    assert "non-integer" in proc.stderr


def test_script_rejects_k_larger_than_cells(tmp_path):
    x = np.random.default_rng(0).poisson(3, size=(5, 10))
    inp = _write(tmp_path, x)
    proc = run_cli(nbmix_fit, *_fit_args(inp, tmp_path, k=6))
    assert_clean_failure(proc, mentions=str(inp), outputs=_outputs(tmp_path))
    assert "k=6" in proc.stderr


def test_script_rejects_cell_with_zero_total(tmp_path):
    x = np.random.default_rng(0).poisson(3, size=(20, 10))
    x[4] = 0
    inp = _write(tmp_path, x)
    proc = run_cli(nbmix_fit, *_fit_args(inp, tmp_path, extra=["--no-drop-empty-cells"]))
    assert_clean_failure(proc, mentions=str(inp), outputs=_outputs(tmp_path))
    assert "zero total count" in proc.stderr


def test_script_drops_empty_cells_by_default(tmp_path):
    """drop_empty_cells is on in the schema, so on for the script too (it was off on the command line)."""
    x = np.random.default_rng(0).poisson(3, size=(20, 10))
    x[4] = 0
    inp = _write(tmp_path, x)
    proc = run_cli(nbmix_fit, *_fit_args(inp, tmp_path, extra=["--nrep", 1, "--max-iters", 3]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    o = ad.read_h5ad(tmp_path / "o.h5ad")
    assert o.n_obs == 19 and "c4" not in o.obs_names
    assert "dropping 1 cells" in proc.stderr


def test_load_cells_holds_the_counts_once_in_x(tmp_path):
    """`load_cells` (the counts read block by block): the counts layer's values in the file's dtype, the empty cell
    dropped, and no copy of them in ``layers`` (the outputs hold the counts once, in ``X``)."""
    from scfactor.nbmix.cli import FIT
    from scfactor.nbmix.pipeline import load_cells
    x = np.random.default_rng(0).poisson(3, size=(20, 10)).astype(np.int32)
    x[4] = 0
    a = load_cells(_write(tmp_path, x), FIT.defaults(k=2))
    assert a.X.dtype == np.int32 and list(a.layers) == []
    assert a.n_obs == 19 and "c4" not in a.obs_names
    np.testing.assert_array_equal(a.X.toarray(), np.delete(x, 4, axis=0))


def test_script_output_content_and_determinism(tmp_path):
    a = simulate_anndata(40, 60, 3, 1e4, 2, "sim")
    inp = tmp_path / "sim.h5ad"
    a.write_h5ad(inp)
    outs = []
    for rep in range(2):
        out = tmp_path / f"run{rep}"
        proc = run_cli(nbmix_fit, *_fit_args(inp, out, k=3, extra=["--nrep", "2", "--seed", "4"]))
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(out)
    assert (outs[0] / "m.tsv").read_bytes() == (outs[1] / "m.tsv").read_bytes()
    assert (outs[0] / "t.tsv").read_bytes() == (outs[1] / "t.tsv").read_bytes()
    m = pd.read_csv(outs[0] / "m.tsv", sep="\t")
    assert m.loc[0, "accuracy_hungarian"] == 1.0 and m.loc[0, "label_kind"] == "ground truth"
    o = ad.read_h5ad(outs[0] / "o.h5ad")
    assert list(o.layers) == []  # the counts once, in X
    np.testing.assert_array_equal(o.X.toarray(), a.layers["counts"].toarray())
    assert o.obsm["nbmix_resp"].shape == (40, 3)
    assert o.varm["nbmix_log_mean"].shape == (60, 3)
    assert len(o.uns["nbmix"]["pi"]) == 3
    rec = pd.DataFrame(o.uns["nbmix"]["restarts"])
    assert list(rec["init"]) == ["kmeans", "kmeans++"]  # the schema's init, then its first restart kind
    assert m.loc[0, "n_restarts"] == 2 and m.loc[0, "n_at_best"] == rec["at_best"].sum() >= 1
    t = pd.read_csv(outs[0] / "t.tsv", sep="\t")
    assert sorted(set(t["restart"])) == [0, 1] and t["kept"].sum() == len(o.uns["nbmix"]["trace"])
    for _, g in t.groupby("restart"):  # every restart's trace is monotone
        assert (np.diff(g["loglik"]) >= -1e-9 * g["loglik"].abs().max()).all()


def test_script_uses_the_schema_restarts(tmp_path):
    """Without --nrep the script makes the schema's 3 restarts (the command line used to default to 1)."""
    a = simulate_anndata(30, 40, 2, 1e4, 3, "sim")
    inp = tmp_path / "sim.h5ad"
    a.write_h5ad(inp)
    proc = run_cli(nbmix_fit, *_fit_args(inp, tmp_path, k=2, extra=["--max-iters", 2]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(ad.read_h5ad(tmp_path / "o.h5ad").uns["nbmix"]["restarts"]["rep"]) == 3


def test_leiden_rejects_too_few_cells(tmp_path):
    inp = _write(tmp_path, np.array([[1, 2, 3], [2, 0, 1]]))
    out = [tmp_path / "l.h5ad", tmp_path / "l.tsv"]
    proc = run_cli(nbmix_leiden, "--input", inp, "--output", out[0], "--metrics", out[1])
    assert_clean_failure(proc, mentions=str(inp), outputs=out)
    assert "at least 3 cells" in proc.stderr


def test_leiden_rejects_missing_batch(tmp_path):
    inp = _write(tmp_path, np.random.default_rng(0).poisson(3, size=(10, 5)))
    out = [tmp_path / "l.h5ad", tmp_path / "l.tsv"]
    proc = run_cli(nbmix_leiden, "--input", inp, "--batch", "ctrl", "--output", out[0], "--metrics", out[1])
    assert_clean_failure(proc, mentions=str(inp), outputs=out)


def test_figures_reject_wrong_inputs_and_names(tmp_path):
    inp = _write(tmp_path, np.random.default_rng(0).poisson(3, size=(10, 5)))
    pngs = [tmp_path / f"{n}.png" for n in ("u", "c", "p")]
    outs = pngs + [p.with_suffix(".pdf") for p in pngs]
    proc = run_cli(nbmix_figures, "--nbmix", inp, "--leiden", inp, "--umap", pngs[0], "--correlation", pngs[1],
                   "--poisson-nb", pngs[2])
    assert_clean_failure(proc, mentions=str(inp), outputs=outs)
    assert "obs['nbmix']" in proc.stderr
    with pytest.raises(ValueError, match="must end in .png"):
        nbmix_figures(["--nbmix", str(inp), "--leiden", str(inp), "--umap", str(tmp_path / "u.pdf"),
                       "--correlation", str(pngs[1]), "--poisson-nb", str(pngs[2])])


def test_poisson_nb_figure_subsamples_large_runs(tmp_path):
    """Above figure_max_cells the Poisson-vs-NB fits get a seeded random subsample of the cells (logged, and in
    the figure's title); the same seed gives the same rows; with as many cells as allowed, every cell."""
    from scfactor.nbmix.pipeline import figures, poisson_nb_rows
    inp = tmp_path / "sim.h5ad"
    simulate_anndata(300, 40, 3, 1e4, 2, "sim").write_h5ad(inp)
    fit, lei = tmp_path / "fit", [tmp_path / "l.h5ad", tmp_path / "l.tsv"]
    assert run_cli(nbmix_fit, *_fit_args(inp, fit, k=3, extra=["--nrep", 1, "--max-iters", 5])).returncode == 0
    assert run_cli(nbmix_leiden, "--input", inp, "--n-pcs", 5, "--output", lei[0], "--metrics", lei[1]).returncode == 0
    assert list(ad.read_h5ad(lei[0]).layers) == []  # the baseline's output too holds the counts once
    pngs = [tmp_path / f"{n}.png" for n in ("u", "c", "p")]
    proc = run_cli(nbmix_figures, "--nbmix", fit / "o.h5ad", "--leiden", lei[0], "--umap", pngs[0], "--correlation",
                   pngs[1], "--poisson-nb", pngs[2], "--figure-max-cells", 120, "--seed", 3)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "a random subsample of 120 of 300 cells" in proc.stderr and all(p.exists() for p in pngs)
    title = figures(fit / "o.h5ad", lei[0], "sim", max_cells=120, seed=3)["poisson_nb"]._suptitle.get_text()
    assert "random subsample of 120 of 300 cells" in title
    every = figures(fit / "o.h5ad", lei[0], "sim", max_cells=300, seed=3)["poisson_nb"]._suptitle.get_text()
    assert "subsample" not in every
    keep = np.ones(300, bool)
    keep[::7] = False
    rows = poisson_nb_rows(keep, 120, 3)
    assert len(rows) == 120 and keep[rows].all() and (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, poisson_nb_rows(keep, 120, 3))
    np.testing.assert_array_equal(poisson_nb_rows(keep, 1000, 3), np.flatnonzero(keep))


def _metrics_row(path, dataset, method, **over):
    row = {"dataset": dataset, "method": method, "label_kind": "ground truth", "k": 3, "n_cells": 40,
           "accuracy_majority": 1.0, "accuracy_hungarian": 1.0, "nmi": 1.0, "ari": 1.0, "log_loss": 0.01, **over}
    pd.DataFrame([row]).to_csv(path, sep="\t", index=False)
    return path


def test_summary_table_and_figure(tmp_path):
    ins = [_metrics_row(tmp_path / "a.tsv", "sim", "nbmix_em"),
           _metrics_row(tmp_path / "b.tsv", "sim", "leiden", log_loss=float("nan"))]
    out, png = tmp_path / "s.tsv", tmp_path / "s.png"
    proc = run_cli(nbmix_summary, "--metrics", *ins, "--output", out, "--figure", png)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summ = pd.read_csv(out, sep="\t")
    assert list(summ["method"]) == ["nbmix_em", "leiden"] and set(METRICS_COLUMNS) <= set(summ.columns)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.with_suffix(".pdf").stat().st_size > 0


def test_summary_rejects_a_table_without_metrics(tmp_path):
    good = _metrics_row(tmp_path / "a.tsv", "sim", "nbmix_em")
    bad = tmp_path / "bad.tsv"
    pd.DataFrame({"dataset": ["x"]}).to_csv(bad, sep="\t", index=False)
    outs = [tmp_path / "s.tsv", tmp_path / "s.png", tmp_path / "s.pdf"]
    proc = run_cli(nbmix_summary, "--metrics", good, bad, "--output", outs[0], "--figure", outs[1])
    assert_clean_failure(proc, mentions=str(bad), outputs=outs)


def test_simulate_step_uses_the_schema_defaults(tmp_path):
    out = tmp_path / "toy.h5ad"
    proc = run_cli(simulate_nbmix, "--n", 30, "--p", 40, "--k", 3, "--output", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = ad.read_h5ad(out)
    ref = simulate_anndata(30, 40, 3, 1e4, 1, "toy")  # schema defaults: s = 1e4, seed 1 (the notebook's)
    assert (a.X != ref.X).nnz == 0
    assert a.uns["simulate"]["name"] == "toy" and a.uns["simulate"]["seed"] == 1


def test_simulate_step_rejects_bad_option(tmp_path):
    proc = run_cli(simulate_nbmix, "--n", 0, "--output", tmp_path / "x.h5ad")
    assert proc.returncode == 2
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]) == 1
    assert "--n" in proc.stderr and not (tmp_path / "x.h5ad").exists()


@pytest.mark.slow
def test_leiden_baseline_at_12000_cells(tmp_path):
    """The Leiden baseline (scanpy's approximate neighbours from 4096 cells on, where the pynndescent /
    scipy `getnnz` crash was) at 12,000 cells finds the simulator's three components, with a UMAP per cell."""
    inp = tmp_path / "sim.h5ad"
    simulate_anndata(12_000, 60, 3, 1e4, 1, "sim").write_h5ad(inp)
    out = tmp_path / "o.h5ad", tmp_path / "m.tsv"
    proc = run_cli(nbmix_leiden, "--input", inp, "--output", out[0], "--metrics", out[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = ad.read_h5ad(out[0])
    assert a.obsm["X_umap"].shape == (12_000, 2) and a.obsm["X_pca"].shape == (12_000, 50)
    m = pd.read_csv(out[1], sep="\t").iloc[0]
    assert m["n_scored"] == 12_000 and m["ari"] > 0.95
