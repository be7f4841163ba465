"""Checkpoints kept in object storage (`scfactor.core.remote`), against moto's in-process S3 mock."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from scfactor.core import checkpoint, remote
from scfactor.core.errors import ScfactorError

moto = pytest.importorskip("moto", reason="moto (requirements.lock) provides the S3 mock")

URL = "s3://ckpt-bucket/run/results/densify/checkpoints/kang/ctrl"


@pytest.fixture
def s3(monkeypatch):
    """An empty mocked S3 account with one bucket; a client of it."""
    for var in remote.ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("SNAKEMAKE_STORAGE_S3_REGION", "us-east-1")
    with moto.mock_aws():
        c = remote.client()
        c.create_bucket(Bucket="ckpt-bucket")
        yield c


def keys(c) -> list[str]:
    return sorted(o["Key"] for o in c.list_objects_v2(Bucket="ckpt-bucket").get("Contents", []))


def test_local_folders_are_left_alone(tmp_path):
    assert remote.stage(None) is None
    assert remote.stage(str(tmp_path)) == str(tmp_path)
    checkpoint.save(tmp_path / "a.npz", {"w": np.ones(3)}, fingerprint="f", epoch=1)   # no upload attempted
    assert checkpoint.load(tmp_path / "a.npz", "f").epoch == 1


def test_checkpoint_survives_the_machine(s3):
    """A checkpoint written in a staged folder is in the bucket at once; a later attempt on another machine
    (a fresh staging folder) resumes from it; `remove` clears both copies."""
    first = remote.stage(URL)
    assert not any(Path(first).iterdir())
    checkpoint.save(f"{first}/neumf.npz", {"w": np.arange(4.0)}, fingerprint="fp", epoch=3, meta={"trace": [1]})
    assert keys(s3) == ["run/results/densify/checkpoints/kang/ctrl/neumf.npz"]

    second = remote.stage(URL)                       # the restarted job: another local folder
    assert second != first
    ck = checkpoint.load(f"{second}/neumf.npz", "fp")
    assert ck.epoch == 3 and ck.meta == {"trace": [1]}
    np.testing.assert_array_equal(ck.arrays["w"], np.arange(4.0))

    remote.remove(second)
    assert keys(s3) == []
    assert not os.path.exists(second)


def test_other_prefixes_are_not_touched(s3):
    s3.put_object(Bucket="ckpt-bucket", Key="run/results/densify/checkpoints/kang/ctrl2/neumf.npz", Body=b"x")
    folder = remote.stage(URL)
    assert not any(Path(folder).iterdir())
    remote.remove(folder)
    assert keys(s3) == ["run/results/densify/checkpoints/kang/ctrl2/neumf.npz"]


@pytest.mark.parametrize("spec", ["gs://bucket/key", "s3://bucket", "s3://bucket/"])
def test_unsupported_url_is_one_line(spec):
    with pytest.raises(ScfactorError, match="s3://bucket/key"):
        remote.stage(spec)


def test_unreachable_store_is_one_line(s3):
    with pytest.raises(ScfactorError, match=r"checkpoint store s3://no-such-bucket/x: listing failed"):
        remote.stage("s3://no-such-bucket/x")
