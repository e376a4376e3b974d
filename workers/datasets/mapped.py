"""A torch `Dataset` over a prepared version's memory maps (the only module that imports torch).

Each item reads its one row from the memory map, so a rank that samples with a
`DistributedSampler` pages in its own shard and nothing else. The maps are opened lazily in
each process and never pickled: a DataLoader worker reopens the files instead of receiving a
copy of the whole array.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from workers.datasets.prepare import Prepared


class MappedDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """The rows `indices` of a prepared version: item `i` is row `indices[i]`."""

    def __init__(self, prepared: Prepared, indices: np.ndarray) -> None:
        self._features_path: Path = prepared.features_path
        self._targets_path: Path = prepared.targets_path
        self._indices = np.asarray(indices, dtype=np.int64)
        self._features: np.ndarray | None = prepared.features
        self._targets: np.ndarray | None = prepared.targets

    def __len__(self) -> int:
        return len(self._indices)

    def _maps(self) -> tuple[np.ndarray, np.ndarray]:
        if self._features is None or self._targets is None:
            self._features = np.load(self._features_path, mmap_mode="r", allow_pickle=False)
            self._targets = np.load(self._targets_path, mmap_mode="r", allow_pickle=False)
        return self._features, self._targets

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        features, targets = self._maps()
        row = int(self._indices[index])
        # A copy: the memory map is read-only and torch wants writable memory it owns.
        x = torch.from_numpy(np.array(features[row]))
        y = torch.from_numpy(np.array(targets[row]))
        return x, y

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_features"] = None
        state["_targets"] = None
        return state
