"""The seeded train / validation / test split, identical on every node and at validation."""

from __future__ import annotations

import numpy as np

from workers.datasets.errors import DatasetInvalid
from workers.messages import PreprocessSpec

IndexArray = np.ndarray


def split_indices(
    num_rows: int, preprocessing: PreprocessSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) row indices, as `PreprocessSpec` documents them.

    The rows are shuffled with `numpy.random.default_rng(split_seed)`; the first
    `round(n * test_fraction)` are test, the next `max(1, round(n * val_fraction))` validation,
    the rest train. Each array is int64, in shuffled order.
    """
    order = np.random.default_rng(preprocessing.split_seed).permutation(num_rows)
    test_count = round(num_rows * preprocessing.test_fraction)
    val_count = max(1, round(num_rows * preprocessing.val_fraction))
    if test_count + val_count >= num_rows:
        raise DatasetInvalid(
            f"{num_rows} rows leave none to train on after {test_count} test and "
            f"{val_count} validation rows"
        )
    test = order[:test_count].astype(np.int64)
    val = order[test_count : test_count + val_count].astype(np.int64)
    train = order[test_count + val_count :].astype(np.int64)
    return train, val, test
