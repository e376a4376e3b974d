"""Whole-or-nothing file writes, for every file a reader must never see half written.

The bytes go to a temporary file in the target's directory (the same filesystem, so the rename
is atomic), are flushed and fsynced, and only then renamed over the target: a reader sees the
old content or the new, and a crash leaves at worst a stray `.<name>.*.tmp`, never a truncated
file under the real name. The node's spec and exit files, its dataset cache, checkpoints and
the portal's built-in dataset all go through here (the portal may import `workers`; the node
never imports the portal).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


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
