"""Whole-or-nothing file writes, for every file a reader must never see half written.

The bytes go to a temporary file in the target's directory (the same filesystem, so the rename
is atomic), are flushed and fsynced, and only then renamed over the target: a reader sees the
old content or the new, and a crash leaves at worst a stray `.<name>.*.tmp`, never a truncated
file under the real name. The node's spec and exit files, its dataset cache, checkpoints and
the portal's built-in dataset all go through here (the portal may import `workers`; the node
never imports the portal).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` when the block ends without an exception.

    An exception inside the block removes the temporary file and leaves `path` as it was.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a small file whole: readers see the old content or the new, never half."""
    with atomic_writer(path) as out:
        out.write(data.encode() if isinstance(data, str) else data)


# Files are hashed and copied in pieces of this size: memory stays flat for any file.
CHUNK_BYTES = 1 << 20


def sha256_of(source: IO[bytes], *, copy_to: IO[bytes] | None = None) -> tuple[str, int]:
    """The SHA-256 hex digest and size of what is left to read in `source`, in constant memory;
    with `copy_to`, the bytes are written there as they are hashed (a verified copy)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return digest.hexdigest(), size


def sha256_of_path(path: Path) -> str:
    """The SHA-256 hex digest of the file at `path`."""
    with path.open("rb") as handle:
        return sha256_of(handle)[0]
