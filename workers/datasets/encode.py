"""Statistics (computed on the training rows) and the transform that applies them.

`prepare()` and `rows_to_inputs()` both end in the functions here, so a node and the predictor
turn the same raw values into the same float32 numbers, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workers.datasets.errors import DatasetInvalid
from workers.messages import FeatureSpec

MAX_CATEGORIES = 1000
_MAX_NAME = 200


def _spread(low: float, high: float) -> float:
    # A constant feature carries no information; dividing by 1 keeps it finite.
    spread = high - low
    return spread if spread > 0 and np.isfinite(spread) else 1.0


def numeric_stats(
    name: str, train: np.ndarray, *, normalization: str, file: str, per_axis: bool = False
) -> FeatureSpec:
    """`fill` (the training mean), `shift` and `scale` of one numeric feature.

    `train` holds the feature's training values (NaN where missing), of any shape.
    """
    present = train[~np.isnan(train)]
    if present.size == 0:
        raise DatasetInvalid(
            "the column has no values in the training rows", file=file, column=name
        )
    mean = float(present.mean())
    shift, scale = 0.0, 1.0
    if normalization == "minmax":
        low, high = float(present.min()), float(present.max())
        shift, scale = low, _spread(low, high)
    elif normalization == "standard":
        std = float(present.std())
        shift, scale = mean, (std if std > 0 and np.isfinite(std) else 1.0)
    return FeatureSpec(name=name, kind="numeric", fill=mean, shift=shift, scale=scale)


def categorical_stats(name: str, train: pa.Array, *, file: str) -> FeatureSpec:
    """The training rows' categories (sorted) and the most frequent one, the fill."""
    counts = pc.value_counts(train.drop_null()).to_pylist()
    if not counts:
        raise DatasetInvalid(
            "the column has no values in the training rows", file=file, column=name
        )
    if len(counts) > MAX_CATEGORIES:
        raise DatasetInvalid(
            f"the column has {len(counts)} distinct values in the training rows; a categorical "
            f"column may have at most {MAX_CATEGORIES}",
            file=file,
            column=name,
        )
    for item in counts:
        if len(item["values"]) > _MAX_NAME:
            raise DatasetInvalid(
                f"the category {item['values'][:40]!r}... is longer than {_MAX_NAME} characters",
                file=file,
                column=name,
            )
    categories = tuple(sorted(item["values"] for item in counts))
    # The most frequent; a tie goes to the first in sorted order.
    fill = min(counts, key=lambda item: (-item["counts"], item["values"]))["values"]
    return FeatureSpec(name=name, kind="categorical", categories=categories, fill_category=fill)


def feature_width(feature: FeatureSpec) -> int:
    return len(feature.categories) if feature.kind == "categorical" else 1


def encode_numeric(values: np.ndarray, feature: FeatureSpec) -> np.ndarray:
    """`(value - shift) / scale` in float64, then float32; a missing value is `fill` first."""
    filled = np.where(np.isnan(values), feature.fill, values)
    return ((filled - feature.shift) / feature.scale).astype(np.float32)


def encode_categorical(values: pa.Array, feature: FeatureSpec) -> np.ndarray:
    """A one-hot block over `categories`: an unseen value is all zeros, a missing one the fill."""
    filled = pc.fill_null(values, feature.fill_category) if feature.fill_category else values
    index = pc.index_in(filled, value_set=pa.array(feature.categories, pa.string()))
    positions = np.asarray(pc.fill_null(index, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    block = np.zeros((len(positions), len(feature.categories)), dtype=np.float32)
    known = positions >= 0
    block[np.flatnonzero(known), positions[known]] = 1.0
    return block


def encode_table(
    columns: Mapping[str, np.ndarray | pa.Array], features: Sequence[FeatureSpec], rows: int
) -> np.ndarray:
    """The feature matrix `[rows, sum of widths]`, columns in the order of `features`."""
    blocks: list[np.ndarray] = []
    for feature in features:
        raw = columns[feature.name]
        if feature.kind == "numeric":
            assert isinstance(raw, np.ndarray)
            blocks.append(encode_numeric(raw, feature)[:, None])
        else:
            assert isinstance(raw, pa.Array)
            blocks.append(encode_categorical(raw, feature))
    if not blocks:
        return np.zeros((rows, 0), dtype=np.float32)
    return np.concatenate(blocks, axis=1)


def encode_last_axis(values: np.ndarray, features: Sequence[FeatureSpec]) -> np.ndarray:
    """Per-feature normalisation of an array whose last axis is the features (npz)."""
    shift = np.array([feature.shift for feature in features], dtype=np.float64)
    scale = np.array([feature.scale for feature in features], dtype=np.float64)
    return ((values.astype(np.float64) - shift) / scale).astype(np.float32)


def encode_channels(pixels: np.ndarray, features: Sequence[FeatureSpec]) -> np.ndarray:
    """Per-channel normalisation of `[..., channels, height, width]` 0-1 pixel values."""
    shift = np.array([feature.shift for feature in features], dtype=np.float64)[:, None, None]
    scale = np.array([feature.scale for feature in features], dtype=np.float64)[:, None, None]
    return ((pixels.astype(np.float64) - shift) / scale).astype(np.float32)
