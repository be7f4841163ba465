"""Densify's fan-out (`scfactor.densify.fanout`; densify_train / densify_predict / densify_gather): the same
output as the single job byte for byte, shards of whole prediction blocks, memory of one shard bounded by
its cells, one-line failures on bad inputs."""

from __future__ import annotations

import tracemalloc

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import assert_clean_failure, run_cli
from densify.data import cpu_strategy, densify_args, planted_counts, write_preprocessed
from scfactor.densify import fanout
from scfactor.densify.cli import DENSIFY, densify, densify_gather, densify_predict, densify_train
from scfactor.densify.train import cells_per_block

#: 40 genes, blocks of 10 cells: 9 blocks of 90 cells, 4 shards of 2, 2, 2 and 3 blocks
N, M, BLOCK, K = 90, 40, 400, 4


@pytest.mark.parametrize("n, m, block, shards", [(90, 40, 400, 4), (7, 3, 1, 3), (5, 10, 100, 9), (1000, 7, 70, 1)])
def test_shards_are_contiguous_runs_of_whole_blocks(n, m, block, shards):
    per = cells_per_block(block, m)
    ranges = [fanout.shard_cells(n, m, block, shards, k) for k in range(shards)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    for (a, b), (c, _) in zip(ranges, ranges[1:]):
        assert b == c and a <= b
    assert all(a % per == 0 for a, b in ranges if b > a)
    sizes = [-(-(b - a) // per) for a, b in ranges]
    assert max(sizes) - min(sizes) <= 1                     # near-equal numbers of blocks


def _fan_args(inp, *extra):
    return ["--genes", "all", "--epochs", 2, "--block-entries", 512, "--embedding-dim", 8, "--layers", 16, 8,
            "--threads", 1, "--predict-block", BLOCK, *extra]


def _fan_out(tmp_path, inp, shards=K):
    """Run the fan-out in-process; returns (model, shard files, output, table)."""
    model = tmp_path / "model.npz"
    assert run_cli(densify_train, "--input", inp, "--batch", "b1", *_fan_args(inp), "--model", model).returncode == 0
    files = [tmp_path / f"shard{k}.npy" for k in range(shards)]
    for k, f in enumerate(files):
        proc = run_cli(densify_predict, "--model", model, "--shard", k, "--shards", shards, *_fan_args(inp),
                       "--output", f)
        assert proc.returncode == 0, proc.stderr[-3000:]
    out, table = tmp_path / "fan.h5ad", tmp_path / "fan.tsv"
    proc = run_cli(densify_gather, "--input", inp, "--batch", "b1", *_fan_args(inp), "--model", model,
                   "--predictions", *files, "--output", out, "--heldout-table", table)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return model, files, out, table


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The single densify job and the fan-out over K shards on the same input."""
    tmp = tmp_path_factory.mktemp("fanout")
    x, _ = planted_counts(N, M)
    inp = write_preprocessed(tmp / "in.h5ad", x)
    single = tmp / "single"
    single.mkdir()
    proc = run_cli(densify, *densify_args(inp, single, "--predict-block", BLOCK))
    assert proc.returncode == 0, proc.stderr[-3000:]
    fan = tmp / "fan"
    fan.mkdir()
    return inp, single, _fan_out(fan, inp)


def test_fan_out_output_is_the_single_jobs_byte_for_byte(runs):
    import anndata as ad
    _, single, (_, files, out, table) = runs
    assert table.read_bytes() == (single / "out.tsv").read_bytes()
    with h5py.File(single / "out.h5ad") as a, h5py.File(out) as b:
        da, db = a["layers/neumf"], b["layers/neumf"]
        assert da.chunks == db.chunks == (cells_per_block(BLOCK, M), M)
        assert da[()].tobytes() == db[()].tobytes()
        for k in ("layers/counts/data", "layers/counts/indices", "X/data"):
            assert a[k][()].tobytes() == b[k][()].tobytes(), k
        assert list(a["obs/_index"][()]) == list(b["obs/_index"][()])
    ua, ub = ad.read_h5ad(single / "out.h5ad").uns["neumf"], ad.read_h5ad(out).uns["neumf"]
    assert pd.DataFrame(ua["heldout"]).equals(pd.DataFrame(ub["heldout"]))   # NaN where a side is constant
    assert np.array_equal(ua["heldout_rows"], ub["heldout_rows"]) and np.array_equal(ua["heldout_cols"], ub["heldout_cols"])
    assert np.array_equal(ua["trace"]["neumf"]["loss"], ub["trace"]["neumf"]["loss"])
    assert set(ua["params"]) == set(ub["params"])
    # each shard holds its rows of the output, whole blocks of them
    dense = ad.read_h5ad(out).layers["neumf"]
    for k, f in enumerate(files):
        start, stop = fanout.shard_cells(N, M, BLOCK, K, k)
        assert np.load(f).tobytes() == dense[start:stop].tobytes()
    assert [np.load(f).shape[0] for f in files] == [20, 20, 20, 30]


def test_more_shards_than_blocks_leaves_empty_shards(runs, tmp_path):
    inp, _, (model, *_) = runs
    f = tmp_path / "s.npy"
    proc = run_cli(densify_predict, "--model", model, "--shard", 0, "--shards", 20, *_fan_args(inp), "--output", f)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.load(f).shape == (0, M)


def test_bad_inputs_fail_in_one_line(runs, tmp_path):
    inp, _, (model, files, *_) = runs
    out = tmp_path / "s.npy"

    def predict(*args, model=model):
        return run_cli(densify_predict, "--model", model, *args, *_fan_args(inp), "--output", out)

    assert_clean_failure(predict("--shard", 4, "--shards", 4), mentions="--shard 4", outputs=[out])
    assert_clean_failure(predict("--shard", 0, "--shards", 2, model=tmp_path / "none.npz"),
                         mentions="none.npz", outputs=[out])
    bad = tmp_path / "bad.npz"
    bad.write_text("not a model")
    assert_clean_failure(predict("--shard", 0, "--shards", 2, model=bad), mentions="not a densify model file",
                         outputs=[out])
    proc = run_cli(densify_predict, "--model", model, "--shard", 0, "--shards", 2, *_fan_args(inp),
                   "--embedding-dim", 4, "--output", out)
    assert_clean_failure(proc, mentions="other densify settings", outputs=[out])

    h5, tsv = tmp_path / "o.h5ad", tmp_path / "o.tsv"

    def gather(shards, inp=inp):
        return run_cli(densify_gather, "--input", inp, "--batch", "b1", *_fan_args(inp), "--model", model,
                       "--predictions", *shards, "--output", h5, "--heldout-table", tsv)

    assert_clean_failure(gather(files[::-1]), mentions="should be float32", outputs=[h5, tsv])
    assert_clean_failure(gather(files[:3] + [bad]), mentions="not a prediction shard", outputs=[h5, tsv])
    x, _ = planted_counts(N, M, seed=1)
    other = write_preprocessed(tmp_path / "other.h5ad", x)
    assert_clean_failure(gather(files, inp=other), mentions="other input data", outputs=[h5, tsv])


def test_a_shard_reads_only_its_cells(tmp_path):
    """Traced (numpy / Python) peak of predicting 400 of 40,000 cells: a small fraction of the per-cell arrays,
    which loading the whole model file traces."""
    from scfactor.densify.pipeline import predict_shard
    from scfactor.densify.train import FitResult, build_model
    strategy = cpu_strategy()
    n, m = 40_000, 30
    opts = DENSIFY.defaults(embedding_dim=16, layers=(8, 4), predict_block=100 * m)
    train = sp.csr_matrix((n, m), dtype=np.float32)
    model = build_model("neumf", train, np.ones(n), opts, strategy)
    path = tmp_path / "model.npz"
    fanout.save_model(path, FitResult(model, np.zeros(n, np.float32), {}, 0.0, 0.0), train, opts)
    cell_bytes = 2 * n * 16 * 4
    predict_shard(path, opts, strategy, 0, 100, tmp_path / "warm.npy")   # trace the prediction function first

    tracemalloc.start()
    start, stop = predict_shard(path, opts, strategy, 1, 100, tmp_path / "s.npy")
    _, shard_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    fanout.checkpoint.read(path)
    _, whole = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (start, stop) == (400, 800)
    assert whole >= cell_bytes
    assert shard_peak < cell_bytes / 10
    assert pd.Series(np.load(tmp_path / "s.npy").ravel()).notna().all()
