"""The trainer's view of a dataset version: `workers.datasets` prepares it, this shards it.

`workers.datasets.prepare` turns the verified file into memory-mapped `.npy` arrays once per
node (the features already normalised with the version's statistics); every rank then reads
only the rows its `DistributedSampler` hands it, so no rank holds the whole dataset in memory.
The split is `workers.datasets.split_indices` of the version's seeded preprocessing, so every
rank on every node sees the same train and validation rows without talking to the others.
A regression target is trained standardised, `(y - target_shift) / target_scale`, here and
nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from workers.datasets import DatasetInvalid, prepare, split_indices
from workers.messages import DatasetSpec
from workers.storage import dataset_fetch

__all__ = ["DatasetInvalid", "Rows", "Shards", "load_shards"]


@dataclass(frozen=True)
class Shards:
    """The prepared arrays (memory-mapped) and which rows are for training and validation."""

    features: np.ndarray[Any, Any]
    targets: np.ndarray[Any, Any]
    train: np.ndarray[Any, Any]
    val: np.ndarray[Any, Any]
    spec: DatasetSpec

    def rows(self, indices: np.ndarray[Any, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows at `indices` as tensors (features float32, targets as the task trains)."""
        order = np.sort(indices)  # sequential reads of the memory map
        x = torch.from_numpy(np.ascontiguousarray(self.features[order], dtype=np.float32))
        raw = np.asarray(self.targets[order])
        if self.spec.task == "regression":
            scaled = (raw.astype(np.float64) - self.spec.target_shift) / self.spec.target_scale
            return x, torch.from_numpy(scaled.astype(np.float32))
        return x, torch.from_numpy(raw.astype(np.int64))


class Rows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """The training rows as a map-style dataset over the memory map; the `DistributedSampler`
    gives each rank its own positions in it. `__getitems__` reads a whole batch at once."""

    def __init__(self, shards: Shards) -> None:
        self._shards = shards

    def __len__(self) -> int:
        return len(self._shards.train)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self._shards.rows(self._shards.train[[position]])
        return x[0], y[0]

    def __getitems__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self._shards.rows(self._shards.train[positions])


def batch_as_is(batch: Any) -> Any:
    """The DataLoader's collate for `Rows.__getitems__`, which already returns a batch."""
    return batch


def load_shards(spec: DatasetSpec, *, cache_dir: Path) -> Shards:
    """Fetch (verify, cache), prepare and split the dataset version `spec` names.

    Raises `StorageError` (cannot fetch, checksum) or `DatasetInvalid` (the bytes do not
    prepare into what the version says)."""
    local = dataset_fetch(uri=spec.uri, sha256=spec.sha256, cache_dir=cache_dir)
    prepared = prepare(local, spec, cache_dir)
    features, targets = prepared.features, prepared.targets
    if len(features) != spec.num_rows or len(targets) != spec.num_rows:
        raise DatasetInvalid(
            f"{local.name}: prepared {len(features)} rows, but the version has {spec.num_rows}"
        )
    if tuple(features.shape[1:]) != tuple(spec.input_shape):
        raise DatasetInvalid(
            f"{local.name}: prepared examples of shape {tuple(features.shape[1:])}, "
            f"but the version says {tuple(spec.input_shape)}"
        )
    train, val, _test = split_indices(spec.num_rows, spec.preprocessing)
    return Shards(
        features=features,
        targets=targets,
        train=np.asarray(train),
        val=np.asarray(val),
        spec=spec,
    )
