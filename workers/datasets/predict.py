"""Prediction inputs from JSON rows, through the same transform `prepare()` applies.

- Tables (`csv`, `parquet`): each row is an object keyed by feature name. A numeric feature
  takes a JSON number (or a string holding one); a categorical one a string. A missing or
  null feature is filled as the version imputes; under `drop` it is an error. The target, if
  present, is ignored; any other key is an error (a typo would otherwise pass silently).
- `npz`: each row is nested lists shaped like one example of `X` (`[f]` or `[length, width]`).
- `images`: each row is either a base64 string of a PNG or JPEG file, or nested lists of 0-255
  pixel values shaped `[height, width]` or `[height, width, channels]` (1, 3 or 4 channels);
  it is converted, resized and normalised exactly as the training images were.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from workers.datasets import encode, images
from workers.datasets.errors import DatasetInvalid, Limits
from workers.messages import DatasetSpec

MAX_ROWS = 1000
# About 3 MB of image file per row: a predict request is small by design.
MAX_IMAGE_CHARS = 4_000_000
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_FILE = "input"


def rows_to_inputs(rows: Sequence[Any], spec: DatasetSpec) -> np.ndarray:
    """float32 `[len(rows), *spec.input_shape]`, preprocessed as the version's training data."""
    if not isinstance(rows, list | tuple) or not rows:
        raise DatasetInvalid("the input must be a non-empty list of rows", file=_FILE)
    if len(rows) > MAX_ROWS:
        raise DatasetInvalid(
            f"{len(rows)} rows; at most {MAX_ROWS} are predicted at once", file=_FILE
        )
    if spec.format in ("csv", "parquet"):
        return _table_inputs(rows, spec)
    if spec.format == "npz":
        return _array_inputs(rows, spec)
    return np.stack([_image_input(row, spec, number) for number, row in enumerate(rows, 1)])


def _number(value: Any, *, row: int, column: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        number = float(value)
    else:
        raise DatasetInvalid(f"{value!r} is not a number", file=_FILE, row=row, column=column)
    if not math.isfinite(number):
        raise DatasetInvalid(
            f"{value!r} is not a finite number", file=_FILE, row=row, column=column
        )
    return number


def _table_inputs(rows: Sequence[Any], spec: DatasetSpec) -> np.ndarray:
    known = {feature.name for feature in spec.features}
    impute = spec.preprocessing.missing == "impute"
    numeric: dict[str, list[float]] = {f.name: [] for f in spec.features if f.kind == "numeric"}
    text: dict[str, list[str | None]] = {
        f.name: [] for f in spec.features if f.kind == "categorical"
    }
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DatasetInvalid(
                "a row must be an object keyed by feature name", file=_FILE, row=number
            )
        for key in row:
            if key not in known and key != spec.target:
                raise DatasetInvalid(
                    f"{key!r} is not a feature of this dataset", file=_FILE, row=number
                )
        for feature in spec.features:
            value = row.get(feature.name)
            if value is None and not impute:
                raise DatasetInvalid(
                    "the value is missing, and the version drops rows with missing values "
                    "(it has no fill)",
                    file=_FILE,
                    row=number,
                    column=feature.name,
                )
            if feature.kind == "numeric":
                numeric[feature.name].append(
                    math.nan if value is None else _number(value, row=number, column=feature.name)
                )
            elif value is None or isinstance(value, str):
                text[feature.name].append(value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                text[feature.name].append(str(value))
            else:
                raise DatasetInvalid(
                    f"{value!r} is not a category", file=_FILE, row=number, column=feature.name
                )
    columns: dict[str, np.ndarray | pa.Array] = {
        name: np.array(values, dtype=np.float64) for name, values in numeric.items()
    }
    columns.update({name: pa.array(values, pa.string()) for name, values in text.items()})
    return encode.encode_table(columns, spec.features, len(rows))


def _array_inputs(rows: Sequence[Any], spec: DatasetSpec) -> np.ndarray:
    examples = []
    for number, row in enumerate(rows, start=1):
        try:
            example = np.asarray(row, dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise DatasetInvalid(
                f"the row is not an array of numbers: {exc}", file=_FILE, row=number
            ) from exc
        if example.shape != tuple(spec.input_shape):
            raise DatasetInvalid(
                f"the row has shape {list(example.shape)}; one example is {list(spec.input_shape)}",
                file=_FILE,
                row=number,
            )
        if not np.isfinite(example).all():
            raise DatasetInvalid("the row holds a NaN or infinite value", file=_FILE, row=number)
        examples.append(example)
    return encode.encode_last_axis(np.stack(examples), spec.features)


def _image_input(row: Any, spec: DatasetSpec, number: int) -> np.ndarray:
    if isinstance(row, str):
        if len(row) > MAX_IMAGE_CHARS:
            raise DatasetInvalid(
                f"the image is {len(row)} characters of base64; at most {MAX_IMAGE_CHARS}",
                file=_FILE,
                row=number,
            )
        try:
            data = base64.b64decode(row, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DatasetInvalid(
                f"the image is not valid base64: {exc}", file=_FILE, row=number
            ) from exc
        image = images.open_image(data, file=_FILE, member=None, row=number, limits=Limits())
    else:
        try:
            array = np.asarray(row, dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise DatasetInvalid(
                f"the row is not an array of pixels: {exc}", file=_FILE, row=number
            ) from exc
        if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))):
            raise DatasetInvalid(
                f"the pixels have shape {list(array.shape)}; expected [height, width] or "
                "[height, width, 1|3|4]",
                file=_FILE,
                row=number,
            )
        if array.size > Limits().max_image_pixels * 4:
            raise DatasetInvalid("the image has too many pixels", file=_FILE, row=number)
        if not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 255) or not np.all(
            array == np.round(array)
        ):
            raise DatasetInvalid(
                "pixel values must be integers in [0, 255]", file=_FILE, row=number
            )
        pixels = array.astype(np.uint8)
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[:, :, 0]
        image = Image.fromarray(pixels)
    return images.encode_image(image, spec)
