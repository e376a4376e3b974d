"""Each rank's `MappedDataset` under a `DistributedSampler` yields its own shard's rows only."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from tests.workers.datasets.conftest import preprocessing, spec_of
from workers.datasets import Prepared, inspect, prepare
from workers.datasets.mapped import MappedDataset


def _prepared(tmp_path: Path) -> Prepared:
    path = tmp_path / "data.csv"
    # Feature i of row r is r, so a yielded tensor names the row it came from.
    path.write_text("r,label\n" + "".join(f"{r},{'ab'[r % 2]}\n" for r in range(40)))
    pp = preprocessing(normalization="none")
    inspection = inspect(
        path, format="csv", target="label", task="classification", preprocessing=pp
    )
    return prepare(path, spec_of(inspection, path), tmp_path / "cache")


def _rows_seen(dataset: MappedDataset, rank: int) -> list[int]:
    sampler: DistributedSampler[tuple[torch.Tensor, torch.Tensor]] = DistributedSampler(
        dataset, num_replicas=2, rank=rank, shuffle=True, seed=0
    )
    sampler.set_epoch(1)
    seen = []
    for x, y in DataLoader(dataset, batch_size=4, sampler=sampler):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(y, (x[:, 0].long() % 2))
        seen += [int(v) for v in x[:, 0]]
    return seen


def test_two_ranks_read_disjoint_shards_that_cover_the_training_rows(tmp_path):
    prepared = _prepared(tmp_path)
    dataset = MappedDataset(prepared, prepared.train)
    rank0, rank1 = _rows_seen(dataset, 0), _rows_seen(dataset, 1)
    sampler0: DistributedSampler[tuple[torch.Tensor, torch.Tensor]] = DistributedSampler(
        dataset, num_replicas=2, rank=0, shuffle=True, seed=0
    )
    sampler0.set_epoch(1)
    assert rank0 == [int(prepared.train[i]) for i in sampler0]
    assert not set(rank0) & set(rank1)
    assert sorted(rank0 + rank1) == sorted(prepared.train.tolist())
    assert not set(rank0 + rank1) & set(prepared.val.tolist())


def test_a_pickled_dataset_carries_no_rows(tmp_path):
    prepared = _prepared(tmp_path)
    dataset = MappedDataset(prepared, prepared.val)
    copy = pickle.loads(pickle.dumps(dataset))  # noqa: S301 - our own bytes
    # The memory maps are reopened in the receiving process, never shipped whole.
    assert len(pickle.dumps(dataset)) < 2_000
    x, _ = copy[0]
    assert x.tolist() == [float(prepared.val[0])]
    assert x.numpy().flags.writeable
