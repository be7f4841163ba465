"""An S3 endpoint on localhost for the storage benchmarks: moto's server (PyPI `moto[s3]` + flask, pinned in
requirements.lock), a bucket, the bundled resources at the keys a run on storage looks for them."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server(bucket: str):
    """moto's S3 server on a free port with an empty ``bucket``; yields the storage plugin's settings as
    environment variables (also set in ``os.environ`` for boto3 and the jobs), stops the server at the end."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=True)
    server.start()
    env = {"SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
           "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": "bench", "SNAKEMAKE_STORAGE_S3_SECRET_KEY": "bench"}
    os.environ.update(env)
    try:
        client().create_bucket(Bucket=bucket)
        yield env
    finally:
        server.stop()


def client():
    """A boto3 client for the endpoint and credentials in the environment (`scfactor.core.remote.client`)."""
    if str(REPO / "workflow") not in sys.path:
        sys.path.insert(0, str(REPO / "workflow"))
    from scfactor.core import remote
    return remote.client()


def upload_resources(bucket: str, key_of, placeholders: bool = False) -> int:
    """Put every file under resources/ at ``key_of(path)`` (empty placeholders when only existence matters,
    as in a dry run); returns the number of files."""
    c, n = client(), 0
    for f in sorted((REPO / "resources").rglob("*")):
        if f.is_file():
            if placeholders:
                c.put_object(Bucket=bucket, Key=key_of(f), Body=b"")
            else:
                c.upload_file(str(f), bucket, key_of(f))
            n += 1
    return n
