"""Dataset storage by URI: local files written under a temporary name and renamed, and any
fsspec URL (the in-memory filesystem here) through the same calls."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from portal.catalog import storage


def test_a_local_write_is_invisible_until_committed(storage_root: Path) -> None:
    pending = storage.PendingFile(name="abc.csv", max_bytes=None)
    pending.write(b"a,b\n")
    pending.write(b"1,2\n")
    final = storage_root.resolve() / "datasets" / "abc.csv"
    assert not final.exists()

    stored = pending.commit()

    assert stored.uri == final.as_uri()
    assert final.read_bytes() == b"a,b\n1,2\n"
    assert stored.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert stored.size_bytes == 8
    assert [p.name for p in final.parent.iterdir()] == ["abc.csv"]


def test_writing_past_the_limit_removes_what_was_written(storage_root: Path) -> None:
    pending = storage.PendingFile(name="big.csv", max_bytes=10)
    pending.write(b"123456")
    with pytest.raises(storage.FileTooLarge, match="limit of 10 bytes"):
        pending.write(b"7890ab")
    assert not [p for p in storage_root.rglob("*") if p.is_file()]


def test_a_discarded_upload_leaves_nothing(storage_root: Path) -> None:
    pending = storage.PendingFile(name="gone.csv", max_bytes=None)
    pending.write(b"x")
    pending.discard()
    assert not [p for p in storage_root.rglob("*") if p.is_file()]


@pytest.fixture
def memory_storage(settings: Any) -> Iterator[str]:
    base = f"memory://trainyard-test-{uuid.uuid4().hex[:8]}"
    settings.TRAINYARD_STORAGE_URL = base
    yield base
    fsspec.filesystem("memory").rm(base.removeprefix("memory://"), recursive=True)


def test_an_fsspec_url_stores_reads_and_deletes_the_same_way(
    memory_storage: str, tmp_path: Path
) -> None:
    pending = storage.PendingFile(name="m.csv", max_bytes=None)
    pending.write(b"a,b\n1,2\n")
    stored = pending.commit()

    assert stored.uri.startswith("memory://") and stored.uri.endswith("/datasets/m.csv")
    assert storage.storage_exists(stored.uri)
    assert storage.storage_stat(stored.uri) == (stored.sha256, 8)
    with storage.storage_local_copy(stored.uri) as path:
        assert path.read_bytes() == b"a,b\n1,2\n"
    fs = fsspec.filesystem("memory")
    assert not [name for name in fs.ls(f"{memory_storage}/datasets") if ".part" in str(name)]

    storage.storage_delete(stored.uri)
    assert not storage.storage_exists(stored.uri)
