#!/usr/bin/env python
"""Verify bundled reference files against a SHA256SUMS list; write a marker file on success."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scfactor import cli, io  # noqa: E402
from scfactor.errors import InputError  # noqa: E402


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


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--sums", required=True, help="SHA256SUMS file; paths relative to its folder")
    p.add_argument("--output", required=True, help="marker file listing the verified files")
    args = p.parse_args(argv)
    cli.setup_logging(args.verbose)
    done = verify(args.sums)
    with io.atomic_output(args.output) as tmp:
        tmp.write_text("".join(f"OK {d}\n" for d in done))
    cli.LOG.info("verified %d files", len(done))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
