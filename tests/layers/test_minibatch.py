"""The minibatch fit of the multilayer NMF: chunks, quality against the full-batch fit, determinism, the
dispatch on ``minibatch_cells`` (below it the step is the full-batch fit, unchanged), memory per cell, bad inputs."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import assert_clean_failure, run_cli
from scfactor.core import io
from scfactor.layers.cli import FIT, SIMULATE, layers
from scfactor.layers.minibatch import chunk_slabs, fit_layered_nmf_minibatch
from scfactor.layers.model import fit_layered_nmf, recovery_metrics
from scfactor.layers.pipeline import fit
from scfactor.layers.simulate import simulate, to_anndata

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim():
    return simulate(SIMULATE.defaults(n_cells=800, n_genes=200, n_factors=4, seed=3))


def _write(sim_, path):
    adata = to_anndata(sim_)
    adata.layers["counts"] = adata.X.copy()
    io.write_h5ad(adata, path)
    return path


@pytest.fixture(scope="module")
def sim_file(sim, tmp_path_factory):
    return _write(sim, tmp_path_factory.mktemp("layersmb") / "sim.h5ad")


def test_chunks_cover_every_cell_once_and_are_seeded():
    chunks = chunk_slabs(1003, 100, seed=4)
    assert len(chunks) == 11
    rows = np.concatenate([np.arange(a, b) for c in chunks for a, b in c])
    np.testing.assert_array_equal(np.sort(rows), np.arange(1003))
    assert all(c == sorted(c) for c in chunks)
    assert chunk_slabs(1003, 100, seed=4) == chunks and chunk_slabs(1003, 100, seed=5) != chunks
    assert [len(c) for c in chunk_slabs(5000, 1000, seed=0)] == [16] * 5  # 16 slabs of 62-63 cells each
    assert chunk_slabs(50, 100, seed=0) == [[(0, 50)]]  # no slab below 32 cells, one per chunk at least


def test_minibatch_settings_have_no_defaults_of_their_own():
    """The minibatch fit's settings come from the schema only (minibatch_size, minibatch_epochs and
    minibatch_cell_iters arrive as batch_size, epochs, cell_iters)."""
    import inspect
    params = inspect.signature(fit_layered_nmf_minibatch).parameters
    for name in ("layers", "solver", "epochs", "lr", "seed", "inner_iters", "batch_size", "cell_iters"):
        assert params[name].default is inspect.Parameter.empty, name
    assert {"minibatch_cells", "minibatch_size", "minibatch_epochs", "minibatch_cell_iters"} <= set(FIT.defaults().__dict__)


@pytest.mark.parametrize("solver,lr", [("poisson", 0.05), ("nnls", 0.2)])
def test_minibatch_recovers_the_blocks_as_well_as_full_batch(sim, solver, lr):
    """8 chunks of 100 cells, 20 passes vs the full-batch fit's 150 epochs: ARI within 0.02 of it, factor
    correlations within 0.01, loss of the final factors at most 5% above its."""
    x = sim.x.astype(np.float32)
    kw = dict(layers=[6, 4], solver=solver, lr=lr, seed=0, inner_iters=2)
    full = fit_layered_nmf(x, epochs=150, **kw)
    mb = fit_layered_nmf_minibatch(lambda a, b: x[a:b], *x.shape, epochs=20, batch_size=100, cell_iters=10, **kw)
    ref, got = (recovery_metrics(r, sim.theta, sim.beta, sim.cell_block) for r in (full, mb))
    for key, tol in (("ari_l2", 0.02), ("beta_match_corr_l2", 0.01), ("theta_match_corr_l2", 0.01)):
        assert got[key] >= ref[key] - tol, (key, got[key], ref[key])
    assert _final_loss(x, mb) <= 1.05 * _final_loss(x, full)
    assert mb.loss[-1] < 0.2 * mb.loss[0]


class _Killed(Exception):
    """Stands for the job being killed right after a checkpoint was written."""


@pytest.mark.parametrize("solver,lr", [("poisson", 0.05), ("nnls", 0.2)])
def test_a_killed_minibatch_fit_resumes_to_the_uninterrupted_result(sim, tmp_path, monkeypatch, caplog, solver, lr):
    """Interrupted after epoch 2's checkpoint and rerun, the fit resumes from epoch 2 and ends with the
    uninterrupted fit's factors and loss trace, bit for bit (Adam state, chunk statistics and chunk order
    restored); a checkpoint of other settings (here more epochs) is discarded."""
    import logging

    from scfactor.core import checkpoint
    x = sim.x.astype(np.float32)
    kw = dict(layers=[6, 4], solver=solver, lr=lr, seed=0, inner_iters=2, epochs=4, batch_size=100, cell_iters=3)
    ref = fit_layered_nmf_minibatch(lambda a, b: x[a:b], *x.shape, **kw)
    ckpt, save = tmp_path / "mb.npz", checkpoint.save

    def save_then_die(path, arrays, **k):
        save(path, arrays, **k)
        if k["epoch"] == 2:
            raise _Killed

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(_Killed):
        fit_layered_nmf_minibatch(lambda a, b: x[a:b], *x.shape, **kw, checkpoint_path=ckpt)
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger="scfactor"):
        got = fit_layered_nmf_minibatch(lambda a, b: x[a:b], *x.shape, **kw, checkpoint_path=ckpt)
    assert "resuming from epoch 2" in caplog.text
    np.testing.assert_array_equal(got.loss, ref.loss)
    for a, b in zip(got.thetas + got.betas, ref.thetas + ref.betas):
        np.testing.assert_array_equal(a, b)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="scfactor"):
        fit_layered_nmf_minibatch(lambda a, b: x[a:b], *x.shape, **{**kw, "epochs": 5}, checkpoint_path=ckpt)
    assert "discarding checkpoint" in caplog.text and "resuming" not in caplog.text


def _final_loss(x, res) -> float:
    """The fit's loss (poisson deviance / MSE) of its final factors over the whole matrix."""
    import torch

    from scfactor.layers.model import _loss
    xt = torch.as_tensor(x, dtype=torch.float64)
    xlogx = float(torch.mean(torch.special.xlogy(xt, xt) - xt)) if res.solver == "poisson" else 0.0
    return float(_loss(xt, torch.as_tensor(res.cell_factors() @ res.betas[-1].T), res.solver, xlogx))


def _fit(inp, d, *extra):
    out, loss, metrics = d / "fit.h5ad", d / "loss.tsv", d / "metrics.tsv"
    return run_cli(layers, "--input", inp, "--output", out, "--loss-table", loss, "--metrics", metrics,
                   "--device", "cpu", "--genes", "all", "--layers", 6, 4, *extra)


MB = ("--minibatch-cells", 500, "--minibatch-size", 100, "--minibatch-epochs", 4)


def test_minibatch_step_outputs_and_determinism(sim_file, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    runs = [_fit(sim_file, a, *MB), _fit(sim_file, b, *MB, "--checkpoint-dir", b / "ckpt")]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert not (b / "ckpt").exists()  # checkpointed every epoch, removed once the outputs are written
    assert all(filecmp.cmp(a / n, b / n, shallow=False) for n in ("loss.tsv", "metrics.tsv"))
    fa, fb = io.read_h5ad(a / "fit.h5ad"), io.read_h5ad(b / "fit.h5ad")
    np.testing.assert_array_equal(fa.uns["theta_l1"], fb.uns["theta_l1"])
    np.testing.assert_array_equal(fa.varm["beta_l2"], fb.varm["beta_l2"])
    assert fa.uns["theta_l1"].shape == (800, 6) and fa.varm["beta_l1"].shape == (200, 6)
    assert fa.uns["layers"]["minibatch"] and fa.uns["layers"]["minibatch_size"] == 100
    assert len(pd.read_csv(a / "loss.tsv", sep="\t")) == 4
    m = pd.read_csv(a / "metrics.tsv", sep="\t").set_index("metric")["value"]
    assert m["n_cells"] == 800 and m["ari_l2"] > 0.3


def test_below_the_threshold_the_step_is_the_full_batch_fit(sim, sim_file, tmp_path):
    """Up to minibatch_cells cells (here exactly 800) the step's factors are `fit`'s on the loaded matrix, bit
    for bit, and the fit records no minibatch settings."""
    assert _fit(sim_file, tmp_path, "--epochs", 5, "--minibatch-cells", 800).returncode == 0
    got = io.read_h5ad(tmp_path / "fit.h5ad")
    ref = fit(sim.x.astype(np.float32), FIT.defaults(layers=(6, 4), epochs=5), device="cpu")
    np.testing.assert_array_equal(got.uns["theta_l1"], ref.thetas[0])
    np.testing.assert_array_equal(got.varm["beta_l2"], ref.betas[1])
    assert "minibatch" not in got.uns["layers"]


#: the child runs the step, then prints its own peak resident memory (VmHWM of its own address space: the
#: rusage of a child counts the parent's peak too, as exec keeps the forking process's high-water mark)
_CHILD = ("import sys; sys.argv = ['layers.py', *sys.argv[1:]]; from scfactor.core.cli import run; "
          "from scfactor.layers.cli import layers; rc = run(layers); "
          "print([ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]); sys.exit(rc)")


def _peak_rss_mib(n_cells: int, tmp: Path) -> float:
    """Peak resident memory (MiB) of the minibatch step on ``n_cells`` x 400 genes (1 epoch), in a child process."""
    counts = simulate(SIMULATE.defaults(n_cells=n_cells, n_genes=400, n_factors=4, seed=1))
    path = _write(counts, tmp / f"{n_cells}.h5ad")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=str(REPO / "workflow"))
    argv = ["--input", path, "--genes", "all", "--device", "cpu", "--layers", 6, 4, "--minibatch-cells", 1,
            "--minibatch-size", 500, "--minibatch-epochs", 1, "--minibatch-cell-iters", 1, "--output", tmp / "f.h5ad",
            "--loss-table", tmp / "l.tsv", "--metrics", tmp / "m.tsv"]
    proc = subprocess.run([sys.executable, "-c", _CHILD, *map(str, argv)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split("VmHWM:")[1].split()[0]) / 1024  # kB


def test_minibatch_memory_per_cell_is_far_below_the_dense_matrix(tmp_path):
    """Peak memory grows by under 2 KiB per extra cell from 1000 to 15000 cells x 400 genes (measured: ~0.5 KiB;
    the full-batch fit: ~17 KiB, several dense float32 copies of a 1.6 KiB row)."""
    small, large = _peak_rss_mib(1000, tmp_path), _peak_rss_mib(15000, tmp_path)
    per_cell_kib = (large - small) * 1024 / 14000
    assert per_cell_kib < 2.0, (small, large, per_cell_kib)


@pytest.mark.parametrize("edit,extra,mentions", [
    ("negative", (), "negative"),
    ("zeros", (), "all zeros"),
    (None, ("--layer", "spliced"), "has no layer 'spliced'"),
    (None, ("--layers", 300), "wider than"),
    (None, ("--minibatch-size", 0), "--minibatch-size"),
])
def test_minibatch_bad_inputs_fail_cleanly(sim, tmp_path, edit, extra, mentions):
    adata = to_anndata(sim)
    x = adata.X.toarray().astype(np.float32)
    if edit == "negative":
        x[700, 5] = -1
    elif edit == "zeros":
        x[:] = 0
    import scipy.sparse as sp
    adata.layers["counts"] = sp.csr_matrix(x)
    path = tmp_path / "in.h5ad"
    io.write_h5ad(adata, path)
    proc = _fit(path, tmp_path, *MB, *extra)
    assert_clean_failure(proc, mentions=mentions,
                         outputs=[tmp_path / "fit.h5ad", tmp_path / "loss.tsv", tmp_path / "metrics.tsv"])
