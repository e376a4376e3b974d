"""The split is a pure function of the row count and the preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from tests.workers.datasets.conftest import preprocessing
from workers.datasets import DatasetInvalid, split_indices


def test_it_is_the_same_split_every_time():
    pp = preprocessing(split_seed=5)
    first = split_indices(101, pp)
    second = split_indices(101, pp)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a, b)
        assert a.dtype == np.int64


def test_the_parts_cover_every_row_once_in_the_documented_sizes():
    pp = preprocessing(val_fraction=0.2, test_fraction=0.15)
    train, val, test = split_indices(101, pp)
    assert (len(test), len(val), len(train)) == (round(101 * 0.15), round(101 * 0.2), 101 - 15 - 20)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(101))


def test_it_is_the_documented_shuffle():
    pp = preprocessing(split_seed=9, val_fraction=0.25, test_fraction=0.25)
    order = np.random.default_rng(9).permutation(8)
    train, val, test = split_indices(8, pp)
    assert test.tolist() == order[:2].tolist()
    assert val.tolist() == order[2:4].tolist()
    assert train.tolist() == order[4:].tolist()


def test_another_seed_is_another_split():
    a = split_indices(50, preprocessing(split_seed=1))[0]
    b = split_indices(50, preprocessing(split_seed=2))[0]
    assert not np.array_equal(a, b)


def test_validation_always_gets_a_row():
    train, val, test = split_indices(3, preprocessing(val_fraction=0.01, test_fraction=0.0))
    assert (len(train), len(val), len(test)) == (2, 1, 0)


def test_it_refuses_a_split_that_leaves_nothing_to_train_on():
    with pytest.raises(DatasetInvalid, match="2 rows leave none to train on"):
        split_indices(2, preprocessing(val_fraction=0.3, test_fraction=0.3))
