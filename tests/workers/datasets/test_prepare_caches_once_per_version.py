"""`prepare` writes a version once per node, reuses it, and refuses other bytes."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from tests.workers.datasets.conftest import preprocessing, spec_of
from workers.datasets import DatasetInvalid, cache_key, inspect, prepare
from workers.messages import DatasetSpec


def _version(tmp_path: Path, rows: int = 20) -> tuple[Path, DatasetSpec]:
    path = tmp_path / "data.csv"
    path.write_text("x,label\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(rows)))
    inspection = inspect(
        path, format="csv", target="label", task="classification", preprocessing=preprocessing()
    )
    return path, spec_of(inspection, path)


def test_a_second_prepare_reuses_the_cache_without_reading_the_file(tmp_path):
    path, spec = _version(tmp_path)
    first = prepare(path, spec, tmp_path / "cache")
    assert isinstance(first.features, np.memmap)
    assert first.directory.name == cache_key(spec)
    written = first.features_path.stat().st_mtime_ns
    path.unlink()  # a reuse that read the file again would fail now
    second = prepare(path, spec, tmp_path / "cache")
    assert second.features_path.stat().st_mtime_ns == written
    assert np.array_equal(np.asarray(second.features), np.asarray(first.features))
    assert np.array_equal(second.train, first.train)


def test_the_key_ignores_the_uri_but_not_the_preprocessing(tmp_path):
    _, spec = _version(tmp_path)
    moved = msgspec.structs.replace(spec, uri="memory://elsewhere/data.csv")
    other = msgspec.structs.replace(spec, preprocessing=preprocessing(split_seed=99))
    assert cache_key(moved) == cache_key(spec)
    assert cache_key(other) != cache_key(spec)
    assert cache_key(spec).startswith(spec.sha256 + "-")


def test_a_different_row_count_is_refused_and_nothing_is_cached(tmp_path):
    path, spec = _version(tmp_path)
    path.write_text(path.read_text() + "20,a\n")
    with pytest.raises(DatasetInvalid) as caught:
        prepare(path, spec, tmp_path / "cache")
    assert str(caught.value) == (
        "data.csv: prepared 21 rows but the version was validated with 20: these are "
        "different bytes"
    )
    assert list((tmp_path / "cache").rglob("*.npy")) == []
    assert list((tmp_path / "cache").rglob("*.tmp")) == []


def test_a_damaged_cache_is_prepared_again(tmp_path):
    path, spec = _version(tmp_path)
    first = prepare(path, spec, tmp_path / "cache")
    expected = np.array(first.features)
    first.features_path.write_bytes(b"\x93NUMPY truncated")
    again = prepare(path, spec, tmp_path / "cache")
    assert np.array_equal(np.asarray(again.features), expected)


def test_a_stray_temporary_file_from_a_crash_is_not_taken_for_the_cache(tmp_path):
    path, spec = _version(tmp_path)
    directory = tmp_path / "cache" / cache_key(spec)
    directory.mkdir(parents=True)
    (directory / ".features.npy.abc.tmp").write_bytes(b"half")
    prepared = prepare(path, spec, tmp_path / "cache")
    assert prepared.features.shape == (20, 1)
