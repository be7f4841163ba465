"""Checkpoints of NeuMF training (`scfactor.core.checkpoint`): resume after a kill, and discarding a
checkpoint that belongs to other settings (fewer epochs) or is corrupt."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import step_command
from densify.data import cpu_strategy, densify_args, planted_counts, write_preprocessed
from scfactor.densify.cli import DENSIFY, densify

SMALL = dict(embedding_dim=4, layers=(8, 4), block_entries=256, block_genes=16)


@pytest.fixture(scope="module")
def tf_cpu():
    return cpu_strategy()


def _fit(x, strategy, ckpt=None, **kw):
    from scfactor.densify.train import fit
    return fit(x, DENSIFY.defaults(**{**SMALL, **kw}), strategy, checkpoint_dir=ckpt)


def _assert_same_model(a, b):
    sa, sb = a.model.get_state(), b.model.get_state()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def _header(path):
    with np.load(path) as z:
        return json.loads(str(z["__checkpoint__"]))


def test_fewer_epochs_discard_the_checkpoint_of_a_longer_run(tf_cpu, tmp_path, caplog):
    """The old fingerprint ignored epochs: lowering them resumed 'from epoch 3' and returned the 3-epoch model."""
    x, _ = planted_counts(60, 40)
    ckpt = tmp_path / "ckpt"
    longer = _fit(x, tf_cpu, ckpt, epochs=3)
    assert _header(ckpt / "neumf.npz")["epoch"] == 3
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="scfactor"):
        shorter = _fit(x, tf_cpu, ckpt, epochs=2)
    fresh = _fit(x, tf_cpu, None, epochs=2)
    assert [e["epoch"] for e in shorter.trace["neumf"]] == [1, 2]
    np.testing.assert_array_equal([e["loss"] for e in shorter.trace["neumf"]],
                                  [e["loss"] for e in fresh.trace["neumf"]])
    _assert_same_model(shorter, fresh)
    assert not np.array_equal(shorter.model.get_state()["out_w"], longer.model.get_state()["out_w"])
    text = caplog.text
    assert "discarding checkpoint" in text and "other input data or settings" in text
    assert "resuming" not in text
    assert _header(ckpt / "neumf.npz")["epoch"] == 2  # the checkpoint now belongs to the 2-epoch run


def test_checkpoint_holds_the_optimiser_state(tf_cpu, tmp_path):
    """One format: model variables and Adam's moments and step (which also keys the dropout masks)."""
    x, _ = planted_counts(60, 40)
    res = _fit(x, tf_cpu, tmp_path, epochs=2)
    with np.load(tmp_path / "neumf.npz") as z:
        names = set(z.files)
        step = int(z["adam/step"])
    assert set(res.model.state_names) <= names
    assert {"adam/step", "adam/m0", "adam/v0"} <= names
    assert step == 2 * int(np.ceil(60 / (256 // 16))) * int(np.ceil(40 / 16))  # tiles of 16 cells x 16 genes


@pytest.mark.parametrize("damage", ["garbage", "truncated", "old_format"])
def test_corrupt_checkpoint_is_discarded_and_training_starts_over(tf_cpu, tmp_path, caplog, damage):
    x, _ = planted_counts(60, 40)
    ckpt = tmp_path / "ckpt"
    _fit(x, tf_cpu, ckpt, epochs=2)
    path = ckpt / "neumf.npz"
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint" * 10)
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # the format before scfactor.core.checkpoint: __meta__ + v<i> arrays
        np.savez(path, __meta__=np.array(json.dumps({"epoch": 1, "trace": [], "fingerprint": "x"})),
                 v0=np.zeros(3))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="scfactor"):
        again = _fit(x, tf_cpu, ckpt, epochs=2)
    assert "discarding unreadable checkpoint" in caplog.text and "starting over" in caplog.text
    assert "resuming" not in caplog.text
    assert [e["epoch"] for e in again.trace["neumf"]] == [1, 2]
    _assert_same_model(again, _fit(x, tf_cpu, None, epochs=2))
    assert _header(path)["epoch"] == 2


def test_killed_training_resumes_from_checkpoint_and_matches_uninterrupted_run(tmp_path):
    """SIGKILL a real training run after its first checkpoint, rerun, compare with an uninterrupted run."""
    import anndata as ad
    x, _ = planted_counts(300, 100, seed=1)
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    epochs = 5
    killed, full = tmp_path / "killed", tmp_path / "full"
    killed.mkdir()
    full.mkdir()
    ckpt = killed / "ckpt"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    cmd = step_command(densify, *densify_args(inp, killed, "--checkpoint-dir", ckpt, epochs=epochs))
    # the uninterrupted reference run goes alongside
    ref = subprocess.Popen(step_command(densify, *densify_args(inp, full, epochs=epochs)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    while not (ckpt / "neumf.npz").exists():
        assert proc.poll() is None, "training ended before its first checkpoint: " + proc.stderr.read()[-2000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "out.h5ad").exists()
    saved = _header(ckpt / "neumf.npz")["epoch"]
    assert 1 <= saved < epochs

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from epoch {saved}" in again.stderr
    trained = [ln for ln in again.stderr.splitlines() if "neumf epoch" in ln]
    assert len(trained) == epochs - saved and f"epoch {saved + 1}/{epochs}" in trained[0]

    _, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err[-3000:]
    a, b = ad.read_h5ad(killed / "out.h5ad"), ad.read_h5ad(full / "out.h5ad")
    np.testing.assert_array_equal(a.layers["neumf"], b.layers["neumf"])
    assert (killed / "out.tsv").read_bytes() == (full / "out.tsv").read_bytes()
    la = a.uns["neumf"]["trace"]["neumf"]["loss"]
    lb = b.uns["neumf"]["trace"]["neumf"]["loss"]
    np.testing.assert_array_equal(la, lb)


def test_two_threads_are_bit_reproducible(tmp_path):
    """Two runs at 2 threads give identical predictions (the gathered-pair version differed by up to
    3.8e-6 here: its embedding gradients were scattered from pairs; a block's are not)."""
    import anndata as ad
    x, _ = planted_counts(600, 300, seed=2)
    inp = write_preprocessed(tmp_path / "in.h5ad", x)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    outs = []
    for k in range(2):
        out = tmp_path / str(k)
        cmd = step_command(densify, *densify_args(inp, out, "--threads", 2, "--embedding-dim", 20, "--layers",
                                                  64, 32, 16, 8, "--block-entries", 16384))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(ad.read_h5ad(out / "out.h5ad").layers["neumf"])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_lr_decay_resumes_at_the_epochs_rate(tf_cpu, tmp_path):
    """A run stopped after 2 of 3 epochs resumes at lr * decay^2 and ends as an uninterrupted run, which
    differs from the run without decay. In one process the step is traced for other tile shapes first, which
    moves the last bits (with a constant rate too; separate processes agree exactly, see the kill test), so
    this compares to 1e-6: a wrong rate for the resumed epoch moves the weights by orders of magnitude more."""
    from scfactor.densify.train import build_model, size_factors, train_phase
    x, _ = planted_counts(60, 40)
    opts = DENSIFY.defaults(**{**SMALL, "epochs": 3, "lr_decay": 0.5})
    sf = size_factors(x)
    offset = np.log(sf).astype(np.float32)

    def run(epochs, ckpt, o=opts):
        model = build_model("neumf", x, sf, o, tf_cpu)
        train_phase(model, x, offset, o, tf_cpu, epochs, "neumf", ckpt)
        return model.get_state()

    run(2, tmp_path)  # stopped after epoch 2
    resumed, full = run(3, tmp_path), run(3, None)
    constant = run(3, None, DENSIFY.defaults(**{**SMALL, "epochs": 3}))
    for k in full:
        np.testing.assert_allclose(resumed[k], full[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert np.abs(full["gmf_cell"] - constant["gmf_cell"]).max() > 1e-3
