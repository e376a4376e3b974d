from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from workers.storage import ChecksumMismatch, StorageError, dataset_fetch


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "source" / "points.csv"
    path.parent.mkdir()
    path.write_text("x,label\n1.0,a\n2.0,b\n")
    return path


def test_it_rejects_a_checksum_mismatch_and_caches_nothing(dataset: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumMismatch, match="expected " + wrong):
        dataset_fetch(uri=dataset.as_uri(), sha256=wrong, cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_it_caches_a_verified_copy_keyed_by_checksum(dataset: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    digest = hashlib.sha256(dataset.read_bytes()).hexdigest()
    local = dataset_fetch(uri=dataset.as_uri(), sha256=digest.upper(), cache_dir=cache)
    assert local == cache / f"{digest}.csv"
    assert local.read_bytes() == dataset.read_bytes()
    # A plain absolute path is accepted too, and a second fetch is served from the cache.
    dataset.unlink()
    assert dataset_fetch(uri=str(dataset), sha256=digest, cache_dir=cache) == local


@pytest.mark.parametrize("uri", ["s3://bucket/points.csv", "relative/points.csv", "file://host/x"])
def test_it_rejects_uris_it_cannot_fetch(uri: str, tmp_path: Path):
    with pytest.raises(StorageError):
        dataset_fetch(uri=uri, sha256="0" * 64, cache_dir=tmp_path)


def test_it_reports_a_missing_file_clearly(tmp_path: Path):
    with pytest.raises(StorageError, match="cannot read dataset"):
        dataset_fetch(uri=str(tmp_path / "gone.csv"), sha256="0" * 64, cache_dir=tmp_path / "c")


@pytest.fixture
def memory_dataset() -> Iterator[tuple[str, bytes]]:
    """A dataset in fsspec's in-memory filesystem: a real backend, reached by URI."""
    data = b"x,label\n1.0,a\n2.0,b\n"
    uri = f"memory://datasets/{uuid.uuid4().hex}/points.csv"
    with fsspec.open(uri, "wb") as out:
        out.write(data)
    yield uri, data
    fsspec.filesystem("memory").rm(uri)


def test_it_fetches_a_non_file_uri_through_fsspec(memory_dataset, tmp_path: Path):
    uri, data = memory_dataset
    digest = hashlib.sha256(data).hexdigest()
    local = dataset_fetch(uri=uri, sha256=digest, cache_dir=tmp_path / "cache")
    assert local == tmp_path / "cache" / f"{digest}.csv"
    assert local.read_bytes() == data
    # Served from the cache once verified, even when the object is gone.
    fsspec.filesystem("memory").rm(uri)
    assert dataset_fetch(uri=uri, sha256=digest, cache_dir=tmp_path / "cache") == local
    with fsspec.open(uri, "wb") as out:
        out.write(data)


def test_a_changed_object_fails_the_checksum_and_caches_nothing(memory_dataset, tmp_path: Path):
    uri, _ = memory_dataset
    wrong = hashlib.sha256(b"the validated bytes").hexdigest()
    with pytest.raises(ChecksumMismatch, match="the file changed after it was validated"):
        dataset_fetch(uri=uri, sha256=wrong, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_object_is_reported_clearly(tmp_path: Path):
    uri = f"memory://datasets/{uuid.uuid4().hex}/gone.csv"
    with pytest.raises(StorageError, match="cannot read dataset"):
        dataset_fetch(uri=uri, sha256="0" * 64, cache_dir=tmp_path / "cache")
