"""`rows_to_inputs` turns raw rows into exactly the numbers `prepare` trained on."""

from __future__ import annotations

import base64
import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from tests.workers.datasets.conftest import image_set, preprocessing, spec_of
from workers.datasets import inspect, prepare, rows_to_inputs


def _json_row(raw: dict[str, str], numeric: set[str]) -> dict[str, object]:
    # What a client sends: numbers as JSON numbers, an empty cell as null.
    return {
        key: (None if value == "" else float(value) if key in numeric else value)
        for key, value in raw.items()
    }


def test_a_csv_with_categories_and_imputed_values(tmp_path):
    path = tmp_path / "data.csv"
    lines = ["age,colour,height,label"]
    for i in range(30):
        age = "" if i % 7 == 3 else f"{(i * 37) % 90 / 3:.4f}"
        colour = "" if i % 9 == 4 else ("red", "green", "blue")[i % 3]
        lines.append(f"{age},{colour},{1.5 + i / 100},{'ab'[i % 2]}")
    path.write_text("\n".join(lines) + "\n")
    pp = preprocessing(missing="impute", normalization="minmax")
    inspection = inspect(
        path, format="csv", target="label", task="classification", preprocessing=pp
    )
    prepared = prepare(path, spec_of(inspection, path), tmp_path / "cache")
    with path.open(newline="") as handle:
        raw = list(csv.DictReader(handle))
    rows = [_json_row({k: v for k, v in r.items() if k != "label"}, {"age", "height"}) for r in raw]
    inputs = rows_to_inputs(rows, spec_of(inspection, path))
    assert inputs.dtype == np.float32
    assert np.array_equal(inputs, np.asarray(prepared.features))
    assert np.isfinite(inputs).all()


def test_a_parquet_regression_table(tmp_path):
    rng = np.random.default_rng(1)
    table = pa.table(
        {
            "x": rng.normal(size=20),
            "n": rng.integers(0, 5, size=20),
            "g": ["p", "q"] * 10,
            "y": rng.normal(size=20),
        }
    )
    path = tmp_path / "data.parquet"
    pq.write_table(table, path)
    inspection = inspect(
        path, format="parquet", target="y", task="regression", preprocessing=preprocessing()
    )
    spec = spec_of(inspection, path)
    prepared = prepare(path, spec, tmp_path / "cache")
    rows = table.drop_columns(["y"]).to_pylist()
    assert np.array_equal(rows_to_inputs(rows, spec), np.asarray(prepared.features))
    expected = (table.column("y").to_numpy() - spec.target_shift) / spec.target_scale
    assert np.array_equal(np.asarray(prepared.targets), expected.astype(np.float32))


def test_an_npz_of_sequences(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 5, 2))
    path = tmp_path / "data.npz"
    with path.open("wb") as out:
        np.savez(out, X=x, y=np.arange(12) % 3)
    inspection = inspect(
        path, format="npz", target="y", task="classification", preprocessing=preprocessing()
    )
    spec = spec_of(inspection, path)
    prepared = prepare(path, spec, tmp_path / "cache")
    assert prepared.features.shape == (12, 5, 2)
    assert np.array_equal(rows_to_inputs(x.tolist(), spec), np.asarray(prepared.features))


def test_images_as_pixel_arrays_and_as_base64_files(tmp_path):
    path = image_set(tmp_path / "shapes.zip", per_class=3, size=20)
    inspection = inspect(
        path, format="images", target="label", task="classification", preprocessing=preprocessing()
    )
    spec = spec_of(inspection, path)
    prepared = prepare(path, spec, tmp_path / "cache")
    with zipfile.ZipFile(path) as archive:
        files = [archive.read(name) for name in sorted(archive.namelist())]
    as_base64 = [base64.b64encode(data).decode() for data in files]
    as_pixels = [np.asarray(Image.open(io.BytesIO(data))).tolist() for data in files]
    assert np.array_equal(rows_to_inputs(as_base64, spec), np.asarray(prepared.features))
    assert np.array_equal(rows_to_inputs(as_pixels, spec), np.asarray(prepared.features))
    assert prepared.features.shape == (6, 3, 32, 32)


def test_the_prepared_targets_are_class_indices(tmp_path):
    path = Path(tmp_path / "data.csv")
    path.write_text("x,label\n" + "".join(f"{i},{'cab'[i % 3]}\n" for i in range(9)))
    inspection = inspect(
        path, format="csv", target="label", task="classification", preprocessing=preprocessing()
    )
    prepared = prepare(path, spec_of(inspection, path), tmp_path / "cache")
    assert inspection.classes == ("a", "b", "c")
    assert prepared.targets.dtype == np.int64
    assert np.asarray(prepared.targets).tolist() == [2, 0, 1] * 3
