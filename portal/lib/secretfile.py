"""Secrets generated once per state directory and kept there, readable by their owner only.

The local run (and the test suite) needs a Django SECRET_KEY, a Redis password and the node
signing key without anyone choosing them; none of them may be a constant that ships with the
code, because a public key signs cookies anyone can forge.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def state_secret(path: Path, *, nbytes: int = 32) -> str:
    """The secret kept in `path`, generated (0600, created exclusively) if it is not there yet.

    Two processes racing to create it both end up reading the one that won.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes) + "\n")
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"{path} is empty; delete it to generate a new secret")
    return value
