"""Simulator (c): batches sharing iNMF factors plus batch-specific factors, with the truth."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from conftest import assert_clean_failure, run_cli
from scfactor.integrate.cli import SIMULATE, simulate_batches
from scfactor.integrate.simulate import write_simulation


def test_simulator_deterministic_with_truth(tmp_path):
    s = SIMULATE.defaults(n_cells=(50, 40), n_genes=60, k_shared=3, k_specific=1, seed=5, chunk=16)
    write_simulation(s, tmp_path / "a.h5ad")
    write_simulation(s, tmp_path / "b.h5ad")
    a, b = ad.read_h5ad(tmp_path / "a.h5ad"), ad.read_h5ad(tmp_path / "b.h5ad")
    assert (a.X != b.X).nnz == 0
    assert a.X.dtype == np.int32 and a.n_obs == 90 and a.n_vars == 60
    assert list(a.obs["batch"].cat.categories) == ["b1", "b2"]
    assert set(a.obs["label"]) <= {"g0", "g1", "g2"}
    assert a.varm["W_true"].shape == (60, 3) and a.obsm["H_true"].shape == (90, 3)
    assert a.varm["S_true_b2"].shape == (60, 1)
    s2 = SIMULATE.defaults(n_cells=(50, 40), n_genes=60, k_shared=3, k_specific=1, seed=6, chunk=16)
    write_simulation(s2, tmp_path / "c.h5ad")
    assert (ad.read_h5ad(tmp_path / "c.h5ad").X != a.X).nnz > 0


def test_cli_writes_the_same_counts_as_the_library(tmp_path):
    out = tmp_path / "cli.h5ad"
    proc = run_cli(simulate_batches, "--n-cells", 50, 40, "--n-genes", 60, "--k-shared", 3, "--seed", 5,
                   "--chunk", 16, "--batch-names", "x", "y", "--output", out)
    assert proc.returncode == 0, proc.stderr
    write_simulation(SIMULATE.defaults(n_cells=(50, 40), n_genes=60, k_shared=3, seed=5, chunk=16,
                                       batch_names=("x", "y")), tmp_path / "lib.h5ad")
    a, b = ad.read_h5ad(out), ad.read_h5ad(tmp_path / "lib.h5ad")
    assert (a.X != b.X).nnz == 0
    assert list(a.obs["batch"].cat.categories) == ["x", "y"]


@pytest.mark.parametrize("args, mention", [
    (["--n-cells", 50], "at least two"),
    (["--batch-names", "a"], "--batch-names has 1 names"),
    (["--batch-names", "a", "a"], "distinct"),
    (["--n-genes", 10], "twice the number of factor blocks"),
    (["--v-fraction", 2], "--v-fraction"),
])
def test_bad_settings_fail_cleanly(tmp_path, args, mention):
    out = tmp_path / "sim.h5ad"
    proc = run_cli(simulate_batches, *args, "--output", out)
    assert_clean_failure(proc, mentions=mention, outputs=[out])
