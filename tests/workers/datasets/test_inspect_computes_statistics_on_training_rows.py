"""Every statistic of a version comes from its training rows, as `split_indices` gives them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.workers.datasets.conftest import image_set, preprocessing
from workers.datasets import inspect, split_indices
from workers.datasets.images import pixels
from workers.messages import FeatureSpec


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "data.csv"
    path.write_text("age,colour,label\n" + "\n".join(rows) + "\n")
    return path


def _rows(count: int) -> tuple[list[float], list[str], list[str]]:
    rng = np.random.default_rng(3)
    ages = [float(a) for a in rng.integers(0, 100, size=count)]
    colours = [f"c{i}" for i in range(count)]  # every colour appears once
    labels = ["yes" if i % 3 else "no" for i in range(count)]
    return ages, colours, labels


def test_numeric_statistics_are_the_training_rows_mean_and_std(tmp_path):
    ages, colours, labels = _rows(40)
    path = _csv(
        tmp_path, [f"{a},{c},{lab}" for a, c, lab in zip(ages, colours, labels, strict=True)]
    )
    pp = preprocessing(normalization="standard")
    inspection = inspect(
        path, format="csv", target="label", task="classification", preprocessing=pp
    )
    train, val, test = split_indices(40, pp)
    age = inspection.features[0]
    expected = np.array(ages)[train]
    assert age.shift == expected.mean() and age.fill == expected.mean()
    assert age.scale == expected.std()
    # All rows would give different numbers: the test would catch statistics over everything.
    assert age.shift != np.mean(ages)
    colour = inspection.features[1]
    # Categories are the training rows' only: a colour seen only in validation or test is not one.
    assert colour.categories == tuple(sorted(np.array(colours)[train]))
    assert not set(colour.categories) & set(np.array(colours)[np.concatenate([val, test])])
    assert inspection.input_shape == (1 + len(train),)
    assert inspection.classes == ("no", "yes")
    assert inspection.chart == {"kind": "classes", "labels": ["no", "yes"], "counts": [14, 26]}
    assert inspection.summary["train_rows"] == len(train) == 28
    assert inspection.preview[0] == {"age": str(ages[0]), "colour": "c0", "label": "no"}


def test_minmax_uses_the_training_rows_extremes(tmp_path):
    ages, colours, labels = _rows(30)
    path = _csv(
        tmp_path, [f"{a},{c},{lab}" for a, c, lab in zip(ages, colours, labels, strict=True)]
    )
    pp = preprocessing(normalization="minmax", split_seed=11)
    inspection = inspect(
        path, format="csv", target="label", task="classification", preprocessing=pp
    )
    train = np.array(ages)[split_indices(30, pp)[0]]
    assert inspection.features[0].shift == train.min()
    assert inspection.features[0].scale == train.max() - train.min()


def test_impute_fills_with_the_training_mean_and_most_frequent_category(tmp_path):
    rows = [
        f"{i if i % 5 else ''},{'red' if i % 4 else ('' if i == 8 else 'blue')},{'ab'[i % 2]}"
        for i in range(20)
    ]
    path = _csv(tmp_path, rows)
    pp = preprocessing(missing="impute", normalization="none")
    inspection = inspect(
        path, format="csv", target="label", task="classification", preprocessing=pp
    )
    assert inspection.num_rows == 20  # nothing dropped
    train = split_indices(20, pp)[0]
    present = [float(i) for i in train if i % 5]
    age, colour = inspection.features
    assert age == FeatureSpec(name="age", kind="numeric", fill=float(np.mean(present)))
    assert colour.fill_category == "red"


def test_drop_counts_the_rows_it_dropped(tmp_path):
    rows = [f"{i if i % 5 else ''},c,{'ab'[i % 2]}" for i in range(20)]
    inspection = inspect(
        _csv(tmp_path, rows),
        format="csv",
        target="label",
        task="classification",
        preprocessing=preprocessing(),
    )
    assert inspection.num_rows == 16
    assert inspection.summary["dropped_rows"] == 4


def test_a_regression_target_is_standardised_with_the_training_rows(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.normal(10.0, 3.0, size=50)
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": rng.normal(size=50), "y": y}), path)
    pp = preprocessing()
    inspection = inspect(path, format="parquet", target="y", task="regression", preprocessing=pp)
    train = y[split_indices(50, pp)[0]]
    assert inspection.target_shift == train.mean()
    assert inspection.target_scale == train.std()
    assert inspection.classes == ()
    assert inspection.chart["kind"] == "histogram"
    assert sum(inspection.chart["counts"]) == 50
    assert inspection.summary["target_min"] == y.min()


def test_image_channel_statistics_come_from_the_training_images(tmp_path):
    path = image_set(tmp_path / "shapes.zip", per_class=6, gray=True)
    pp = preprocessing()
    inspection = inspect(
        path, format="images", target="label", task="classification", preprocessing=pp
    )
    assert inspection.input_shape == (1, 32, 32)
    assert [feature.name for feature in inspection.features] == ["L"]
    import zipfile

    from PIL import Image

    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        train = [
            pixels(Image.open(archive.open(names[i])), mode="L", size=(32, 32))
            for i in split_indices(12, pp)[0]
        ]
    values = np.stack(train)
    assert np.isclose(inspection.features[0].shift, values.mean())
    assert np.isclose(inspection.features[0].scale, values.std())
