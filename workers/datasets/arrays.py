"""NumPy `.npz` datasets: arrays `X` (`[n, f]` or `[n, length, width]`) and `y` (`[n]`)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa

from workers.datasets import encode, targets
from workers.datasets.errors import DatasetInvalid, Limits
from workers.datasets.inspection import PREVIEW_COLUMNS, PREVIEW_ROWS, Inspection, SchemaField
from workers.datasets.split import split_indices
from workers.datasets.zips import Inflater, check_members, open_zip
from workers.messages import DatasetSpec, FeatureSpec, PreprocessSpec, Task

_ARRAYS = ("X.npy", "y.npy")


def read_npz(path: Path, *, file: str, limits: Limits | None) -> tuple[np.ndarray, np.ndarray]:
    """`X` and `y`, inflated under the zip limits and loaded without pickles."""
    with open_zip(path, name=file) as archive:
        infos = check_members(archive, name=file, archive_bytes=path.stat().st_size, limits=limits)
        names = sorted(info.filename for info in infos)
        if names != sorted(_ARRAYS):
            raise DatasetInvalid(
                f"an npz dataset holds exactly the arrays X and y; this one has "
                f"{_listed([name.removesuffix('.npy') for name in names])}",
                file=file,
            )
        inflater = Inflater(archive, name=file, archive_bytes=path.stat().st_size, limits=limits)
        # The bytes are inflated (and counted) once, here; numpy then reads them from memory.
        members = {info.filename: inflater.read(info) for info in infos}
    x = _load(members["X.npy"], name="X", file=file)
    y = _load(members["y.npy"], name="y", file=file)
    return _checked(x, y, file=file, limits=limits)


def _listed(names: list[str], most: int = 5) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def _load(data: bytes, *, name: str, file: str) -> np.ndarray:
    # The header's shape is checked against the bytes before numpy allocates for it.
    try:
        header = io.BytesIO(data)
        version = np.lib.format.read_magic(header)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(header)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(header)
        if dtype.hasobject:
            raise DatasetInvalid(f"{name} holds Python objects; only numbers or text", file=file)
        declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if declared > len(data):
            raise DatasetInvalid(
                f"{name} declares shape {list(shape)} but holds only {len(data)} bytes",
                file=file,
            )
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except DatasetInvalid:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetInvalid(f"{name} cannot be read as a NumPy array: {exc}", file=file) from exc
    assert isinstance(array, np.ndarray)
    return array


def _checked(
    x: np.ndarray, y: np.ndarray, *, file: str, limits: Limits | None
) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype.kind not in "biuf":
        raise DatasetInvalid(f"X has dtype {x.dtype}; it must hold numbers", file=file)
    if x.ndim not in (2, 3):
        raise DatasetInvalid(
            f"X has shape {list(x.shape)}; it must be [n, features] or [n, length, width]",
            file=file,
        )
    if y.ndim != 1 or len(y) != len(x):
        raise DatasetInvalid(
            f"y has shape {list(y.shape)}; it must be [n] with n = {len(x)}, the rows of X",
            file=file,
        )
    if y.dtype.kind not in "biufU":
        raise DatasetInvalid(f"y has dtype {y.dtype}; it must hold numbers or text", file=file)
    if limits is not None:
        if len(x) > limits.max_rows:
            raise DatasetInvalid(f"X has {len(x)} rows; the limit is {limits.max_rows}", file=file)
        if x.shape[-1] > limits.max_columns:
            raise DatasetInvalid(
                f"X has {x.shape[-1]} features; the limit is {limits.max_columns}", file=file
            )
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            value = "NaN" if np.isnan(x[where]) else "infinite"
            raise DatasetInvalid(
                f"X[{', '.join(map(str, where))}] is {value}", file=file, row=where[0] + 1
            )
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise DatasetInvalid(f"y[{index}] is not finite", file=file, row=index + 1)
    return x, y


def _feature_names(x: np.ndarray) -> list[str]:
    return [f"x{index}" for index in range(x.shape[-1])]


def _labels(y: np.ndarray) -> pa.Array:
    if y.dtype.kind == "f" and np.all(y == np.round(y)):
        # 0.0 and 1.0 are the classes "0" and "1".
        return pa.array([str(int(value)) for value in y], pa.string())
    return pa.array([str(value) for value in y.tolist()], pa.string())


def inspect_npz(
    x: np.ndarray, y: np.ndarray, *, file: str, task: Task, preprocessing: PreprocessSpec
) -> Inspection:
    count = len(x)
    if count < 2:
        raise DatasetInvalid(f"X has {count} row(s); at least 2 are needed", file=file)
    split = split_indices(count, preprocessing)
    train = split[0]
    names = _feature_names(x)
    train_x = x[train].astype(np.float64)
    features = tuple(
        encode.numeric_stats(
            name, train_x[..., index], normalization=preprocessing.normalization, file=file
        )
        for index, name in enumerate(names)
    )
    schema: list[SchemaField] = [
        {"name": name, "type": "numeric", "role": "feature"} for name in names
    ]
    target_shift, target_scale = 0.0, 1.0
    chart: targets.ClassChart | targets.HistogramChart
    if task == "classification":
        labels = _labels(y)
        classes = targets.classes_of(labels, file=file, column="y")
        index = targets.class_indices(labels, classes, file=file, column="y")
        chart = targets.class_chart(index, classes)
        summary = targets.summary_of(
            task=task,
            rows=count,
            dropped=0,
            split=split,
            class_index=index,
            num_classes=len(classes),
        )
        schema.append({"name": "y", "type": "categorical", "role": "target"})
    else:
        if y.dtype.kind not in "biuf":
            raise DatasetInvalid(
                f"y has dtype {y.dtype}; regression needs a numeric target", file=file
            )
        classes = ()
        values = y.astype(np.float64)
        target_shift, target_scale = targets.regression_scaling(values[train])
        chart = targets.histogram_chart(values)
        summary = targets.summary_of(task=task, rows=count, dropped=0, split=split, target=values)
        schema.append({"name": "y", "type": "numeric", "role": "target"})
    preview = [_preview_row(x, y, index, names) for index in range(min(PREVIEW_ROWS, count))]
    return Inspection(
        format="npz",
        task=task,
        target="y",
        classes=classes,
        features=features,
        input_shape=tuple(int(d) for d in x.shape[1:]),
        num_rows=count,
        preprocessing=preprocessing,
        target_shift=target_shift,
        target_scale=target_scale,
        schema=schema,
        preview=preview,
        chart=chart,
        summary=summary,
    )


def _preview_row(x: np.ndarray, y: np.ndarray, index: int, names: list[str]) -> dict[str, str]:
    row: dict[str, str]
    if x.ndim == 2:
        row = {name: str(x[index, j].item()) for j, name in enumerate(names[:PREVIEW_COLUMNS])}
    else:
        row = {"X": f"sequence of {x.shape[1]} x {x.shape[2]}"}
    row["y"] = str(y[index].item())
    return row


def encode_examples(x: np.ndarray, features: tuple[FeatureSpec, ...]) -> np.ndarray:
    return encode.encode_last_axis(x, features)


def prepare_npz(
    x: np.ndarray, y: np.ndarray, spec: DatasetSpec, *, file: str
) -> tuple[np.ndarray, np.ndarray, int]:
    if tuple(x.shape[1:]) != tuple(spec.input_shape):
        raise DatasetInvalid(
            f"X has examples of shape {list(x.shape[1:])}, the version "
            f"{list(spec.input_shape)}: these are different bytes",
            file=file,
        )
    features = encode_examples(x, spec.features)
    if spec.task == "classification":
        labels = targets.class_indices(_labels(y), spec.classes, file=file, column="y")
    else:
        labels = ((y.astype(np.float64) - spec.target_shift) / spec.target_scale).astype(np.float32)
    return features, labels, len(x)
