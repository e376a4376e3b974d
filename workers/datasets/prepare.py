"""Prepare a version once per node: preprocessed arrays in the cache, opened memory-mapped.

The cache directory is keyed by the file's SHA-256 and a hash of the spec, so every rank and
every attempt on a node reuses one copy, and a version prepared differently (another split,
another normalisation) is another directory. Each `.npy` is written through
`workers.files.atomic_writer`: a crash leaves a stray temporary file, never a half array under
the real name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from workers.datasets import arrays, images, tables, tabular
from workers.datasets.errors import DatasetInvalid
from workers.datasets.split import split_indices
from workers.files import atomic_writer
from workers.messages import DatasetSpec

# Bumped when preparation changes what it writes, so an old cache is not reused.
PREPARE_VERSION = 1
FEATURES = "features.npy"
TARGETS = "targets.npy"


@dataclass(frozen=True, eq=False)
class Prepared:
    """A prepared version: memory-mapped arrays over every row, and the split's indices."""

    directory: Path
    features: np.ndarray
    targets: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def features_path(self) -> Path:
        return self.directory / FEATURES

    @property
    def targets_path(self) -> Path:
        return self.directory / TARGETS


def cache_key(spec: DatasetSpec) -> str:
    """`<sha256>-<spec hash>`: the URI is left out, since the same bytes may live anywhere."""
    described = msgspec.json.encode(msgspec.structs.replace(spec, uri="-"))
    digest = hashlib.sha256(b"%d:" % PREPARE_VERSION + described).hexdigest()
    return f"{spec.sha256}-{digest[:16]}"


def _target_dtype(spec: DatasetSpec) -> np.dtype[np.generic]:
    return np.dtype(np.int64 if spec.task == "classification" else np.float32)


def _open(directory: Path, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, if both are there and have the shapes the spec says."""
    try:
        features = np.load(directory / FEATURES, mmap_mode="r", allow_pickle=False)
        labels = np.load(directory / TARGETS, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if (
        features.shape != (spec.num_rows, *spec.input_shape)
        or features.dtype != np.float32
        or labels.shape != (spec.num_rows,)
        or labels.dtype != _target_dtype(spec)
    ):
        return None
    return features, labels


def _check_count(count: int, spec: DatasetSpec, *, file: str) -> None:
    if count != spec.num_rows:
        raise DatasetInvalid(
            f"prepared {count} rows but the version was validated with {spec.num_rows}: "
            "these are different bytes",
            file=file,
        )


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_writer(path) as out:
        np.save(out, array, allow_pickle=False)


def _save_rows(path: Path, *, shape: tuple[int, ...], rows: Iterable[np.ndarray]) -> None:
    """A float32 `.npy` written a chunk of rows at a time, never whole in memory."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
        "fortran_order": False,
        "shape": shape,
    }
    written = 0
    with atomic_writer(path) as out:
        np.lib.format.write_array_header_2_0(out, header)
        for chunk in rows:
            out.write(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())
            written += len(chunk)
        if written != shape[0]:
            raise DatasetInvalid(f"prepared {written} rows where {shape[0]} were expected")


def prepare(path: Path, spec: DatasetSpec, cache_dir: Path) -> Prepared:
    """The version's preprocessed arrays under `cache_dir`, prepared now unless already there."""
    file = path.name
    directory = cache_dir / cache_key(spec)
    cached = _open(directory, spec)
    if cached is None:
        directory.mkdir(parents=True, exist_ok=True)
        _write(path, spec, directory, file=file)
        cached = _open(directory, spec)
        if cached is None:  # pragma: no cover - what was just written has the spec's shapes
            raise DatasetInvalid("the prepared arrays do not have the version's shapes", file=file)
    features, labels = cached
    train, val, test = split_indices(spec.num_rows, spec.preprocessing)
    return Prepared(
        directory=directory, features=features, targets=labels, train=train, val=val, test=test
    )


def _write(path: Path, spec: DatasetSpec, directory: Path, *, file: str) -> None:
    # The row count is checked before anything is written; the targets go last, so a cache
    # with targets but no features never happens (and `_open` checks both anyway).
    if spec.format == "images":
        members = images.count_images(path, file=file)
        _check_count(len(members), spec, file=file)
        labels = images.image_targets(members, spec, file=file)
        _save_rows(
            directory / FEATURES,
            shape=(spec.num_rows, *spec.input_shape),
            rows=images.prepared_images(path, spec, file=file),
        )
        _save(directory / TARGETS, labels)
        return
    if spec.format == "npz":
        x, y = arrays.read_npz(path, file=file, limits=None)
        features, labels, count = arrays.prepare_npz(x, y, spec, file=file)
    else:
        read = tables.read_csv if spec.format == "csv" else tables.read_parquet
        features, labels, count = tabular.prepare_table(read(path, file=file, limits=None), spec)
    _check_count(count, spec, file=file)
    if features.shape[1:] != tuple(spec.input_shape):
        raise DatasetInvalid(
            f"the rows encode to shape {list(features.shape[1:])}, the version's is "
            f"{list(spec.input_shape)}: these are different bytes",
            file=file,
        )
    _save(directory / FEATURES, features)
    _save(directory / TARGETS, labels)
