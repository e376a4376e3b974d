from __future__ import annotations

import hashlib
from pathlib import Path

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
