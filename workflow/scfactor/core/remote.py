"""Training state that outlives a job on machines without a shared file system (cloud executors).

A training step's ``--checkpoint-dir`` is a local folder or an object-storage URL, ``s3://bucket/key``
(what the rules pass when Snakemake runs with ``--default-storage-provider s3``: the checkpoint folder
under the run's storage prefix). For a URL the step works in a local staging folder (`stage`): it first
downloads what the bucket holds under the URL (the checkpoints of an earlier attempt, possibly made on
another machine), `scfactor.core.checkpoint.save` uploads every checkpoint right after writing it
(`push`), and `remove` deletes both copies once the step's outputs are written.

Endpoint and credentials come from the S3 storage plugin's own environment variables
(``SNAKEMAKE_STORAGE_S3_ENDPOINT_URL``, ``_ACCESS_KEY``, ``_SECRET_KEY``, ``_TOKEN``, ``_REGION``; the rules
export those given on Snakemake's command line, see workflow/rules/common.smk), else from boto3's own
chain (instance role, ``~/.aws``). Any S3-compatible store works (AWS, MinIO, Google Cloud Storage's XML
API with HMAC keys).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ScfactorError
from .log import LOG

#: the S3 storage plugin's environment variables, by boto3 client argument
ENV = {"endpoint_url": "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL", "aws_access_key_id": "SNAKEMAKE_STORAGE_S3_ACCESS_KEY",
       "aws_secret_access_key": "SNAKEMAKE_STORAGE_S3_SECRET_KEY", "aws_session_token": "SNAKEMAKE_STORAGE_S3_TOKEN",
       "region_name": "SNAKEMAKE_STORAGE_S3_REGION"}


@dataclass
class Mirror:
    """A local staging folder and the object-storage prefix it mirrors."""

    url: str
    bucket: str
    prefix: str
    local: Path

    def key(self, path) -> str:
        """The object key of a file inside the staging folder."""
        return f"{self.prefix}/{Path(path).relative_to(self.local).as_posix()}"


_MIRRORS: dict[Path, Mirror] = {}


def is_url(spec) -> bool:
    """Whether a ``--checkpoint-dir`` value names object storage (``scheme://...``) rather than a folder."""
    return spec is not None and "://" in str(spec)


def client():
    """A boto3 S3 client configured like the storage plugin (its environment variables, else boto3's chain)."""
    import boto3
    from botocore.config import Config
    kwargs = {arg: os.environ[var] for arg, var in ENV.items() if os.environ.get(var)}
    # checksums only when required: S3-compatible stores other than AWS may keep them in the object
    # (the storage plugin sets the same through AWS_REQUEST_CHECKSUM_CALCULATION)
    cfg = Config(retries={"max_attempts": 5, "mode": "standard"}, request_checksum_calculation="when_required",
                 response_checksum_validation="when_required")
    return boto3.client("s3", config=cfg, **kwargs)


def _call(mirror: Mirror, what: str, fn, *args, **kwargs):
    """Run one storage request; a failure becomes one readable line naming the URL."""
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        return fn(*args, **kwargs)
    except (BotoCoreError, ClientError) as exc:
        raise ScfactorError(f"checkpoint store {mirror.url}: {what} failed ({exc})") from None


def _keys(c, mirror: Mirror) -> list[str]:
    pages = c.get_paginator("list_objects_v2").paginate(Bucket=mirror.bucket, Prefix=mirror.prefix + "/")
    return [o["Key"] for page in _call(mirror, "listing", list, pages) for o in page.get("Contents", [])]


def stage(spec):
    """The local folder a step writes its checkpoints to: ``spec`` itself, or for a URL a fresh staging folder
    holding what the bucket has under it (removed when the process ends)."""
    if not is_url(spec):
        return spec
    scheme, _, rest = str(spec).partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme != "s3" or not bucket or not prefix.strip("/"):
        raise ScfactorError(f"--checkpoint-dir {spec}: object storage must be s3://bucket/key (other stores "
                            "through their S3-compatible endpoint)")
    local = Path(tempfile.mkdtemp(prefix="scfactor-checkpoints-"))
    atexit.register(shutil.rmtree, local, True)
    mirror = Mirror(str(spec), bucket, prefix.strip("/"), local)
    c = client()
    keys = _keys(c, mirror)
    for key in keys:
        dest = local / key[len(mirror.prefix) + 1:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        _call(mirror, f"download of {key}", c.download_file, bucket, key, str(dest))
    _MIRRORS[local] = mirror
    LOG.info("checkpoints in %s (%d file(s) there)", spec, len(keys))
    return str(local)


def _mirror_of(path) -> Mirror | None:
    p = Path(path).resolve()
    return next((m for local, m in _MIRRORS.items() if p.is_relative_to(local.resolve())), None)


def push(path) -> None:
    """Upload ``path`` when it lies in a staging folder (a no-op for a plain local checkpoint folder)."""
    mirror = _mirror_of(path)
    if mirror is not None:
        _call(mirror, f"upload of {path}", client().upload_file, str(path), mirror.bucket, mirror.key(path))


def remove(folder) -> None:
    """Delete a checkpoint folder, and for a staging folder what the bucket holds under its URL."""
    if folder is None:
        return
    mirror = _mirror_of(folder)
    if mirror is not None:
        c = client()
        for key in _keys(c, mirror):
            _call(mirror, f"deletion of {key}", c.delete_object, Bucket=mirror.bucket, Key=key)
    shutil.rmtree(folder, ignore_errors=True)
