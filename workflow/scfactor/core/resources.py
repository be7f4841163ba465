"""Checksums of the bundled reference data (``resources/SHA256SUMS``), verified before any job reads it."""

from __future__ import annotations

import hashlib

from . import io
from .errors import InputError


def sha256(path, chunk=1 << 20) -> str:
    """Hex SHA-256 of a file, streamed in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(sums_path) -> list[str]:
    """Check each ``<hash>  <relative path>`` line; return the verified paths or raise InputError."""
    sums = io.require_file(sums_path, "checksum list")
    done = []
    for line in io.read_lines(sums):
        digest, _, rel = line.partition("  ")
        target = sums.parent / rel.strip().removeprefix("./")
        io.require_file(target, "bundled resource")
        if sha256(target) != digest:
            raise InputError(target, f"checksum mismatch against {sums}: the file is corrupt or was changed")
        done.append(str(target))
    return done
