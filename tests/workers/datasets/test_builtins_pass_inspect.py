"""Every built-in generator writes, from its seed alone, a file that `inspect` accepts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests.workers.datasets.conftest import preprocessing, spec_of
from workers.datasets import builtins, inspect, prepare


def test_the_seed_example_is_100_rows_of_10_features_in_0_1(tmp_path):
    path = tmp_path / "seed.csv"
    builtins.write_seed_example(path)
    pp = preprocessing(normalization="none")
    inspection = inspect(
        path, format="csv", target="label", task="classification", preprocessing=pp
    )
    assert inspection.num_rows == 100
    assert inspection.input_shape == (10,)
    assert inspection.classes == ("0", "1")
    prepared = prepare(path, spec_of(inspection, path), tmp_path / "cache")
    values = np.asarray(prepared.features)
    assert values.min() >= 0.0 and values.max() <= 1.0


@pytest.mark.parametrize(
    ("name", "format", "target", "task", "write", "shape"),
    [
        (
            "c.csv",
            "csv",
            "label",
            "classification",
            lambda p: builtins.write_synthetic_classification(
                p, seed=3, rows=60, features=5, classes=4
            ),
            (5,),
        ),
        (
            "r.parquet",
            "parquet",
            "y",
            "regression",
            lambda p: builtins.write_synthetic_regression(p, seed=3, rows=40, features=2),
            (2 + 3,),
        ),
        (
            "s.npz",
            "npz",
            "y",
            "classification",
            lambda p: builtins.write_synthetic_sequences(p, seed=3, rows=20, length=8, width=2),
            (8, 2),
        ),
        (
            "i.zip",
            "images",
            "label",
            "classification",
            lambda p: builtins.write_synthetic_images(p, seed=3, per_class=4, size=16),
            (3, 32, 32),
        ),
    ],
)
def test_each_generator_passes_inspect_and_is_deterministic(
    tmp_path, name, format, target, task, write, shape
):
    first, second = tmp_path / name, tmp_path / f"again-{name}"
    write(first)
    write(second)
    assert (
        hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    )
    inspection = inspect(
        first, format=format, target=target, task=task, preprocessing=preprocessing()
    )
    assert inspection.input_shape == shape
    prepared = prepare(first, spec_of(inspection, first), tmp_path / "cache")
    assert prepared.features.shape == (inspection.num_rows, *shape)


def test_the_image_set_has_one_folder_per_shape(tmp_path):
    path = tmp_path / "shapes.zip"
    builtins.write_synthetic_images(path, seed=0, per_class=2)
    inspection = inspect(
        path, format="images", target="label", task="classification", preprocessing=preprocessing()
    )
    assert inspection.classes == builtins.SHAPES
    assert inspection.chart["counts"] == [2, 2, 2]


def test_another_seed_writes_other_data(tmp_path: Path):
    builtins.write_synthetic_classification(tmp_path / "a.csv", seed=1)
    builtins.write_synthetic_classification(tmp_path / "b.csv", seed=2)
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "b.csv").read_bytes()
