from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A fresh Trainyard state dir, outside pytest's own temporary directory.

    As root, pgserver runs PostgreSQL as another user and opens up the data dir's parents so
    that user can reach it; every pytest session (ours or a concurrent one) resets its base
    directory to 0700, which would lock PostgreSQL out of a data dir under tmp_path.
    """
    path = Path(tempfile.mkdtemp(prefix="trainyard-ops-"))
    yield path / "state"
    shutil.rmtree(path, ignore_errors=True)
