"""Targets, for every format: class names and indices, the regression target's scaling, and
the chart and summary a version shows."""

from __future__ import annotations

import math
import re
from typing import Literal, TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workers.datasets.errors import DatasetInvalid

MAX_CLASSES = 10_000
_MAX_NAME = 200
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


class ClassChart(TypedDict):
    kind: Literal["classes"]
    labels: list[str]
    counts: list[int]


class HistogramChart(TypedDict):
    kind: Literal["histogram"]
    edges: list[float]
    counts: list[int]


class Summary(TypedDict, total=False):
    rows: int
    dropped_rows: int
    train_rows: int
    val_rows: int
    test_rows: int
    # Classification: how many classes, and the smallest and largest class's share of rows.
    classes: int
    smallest_class_fraction: float
    largest_class_fraction: float
    # Regression: the raw target over every row.
    target_min: float
    target_max: float
    target_mean: float


def _sort_key(name: str) -> tuple[float, str]:
    return (float(name), name)


def classes_of(labels: pa.Array, *, file: str, column: str) -> tuple[str, ...]:
    """The class names in index order: sorted as numbers when every one is a number."""
    names = [str(value) for value in pc.unique(labels.drop_null()).to_pylist()]
    if len(names) < 2:
        only = f"only one class {names[0]!r}" if names else "no class"
        raise DatasetInvalid(
            f"the target has {only}; classification needs at least two", file=file, column=column
        )
    if len(names) > MAX_CLASSES:
        raise DatasetInvalid(
            f"the target has {len(names)} distinct values; classification allows at most "
            f"{MAX_CLASSES} classes (is it a regression target?)",
            file=file,
            column=column,
        )
    for name in names:
        if len(name) > _MAX_NAME:
            raise DatasetInvalid(
                f"the class {name[:40]!r}... is longer than {_MAX_NAME} characters",
                file=file,
                column=column,
            )
    if all(_NUMBER.match(name) for name in names):
        return tuple(sorted(names, key=_sort_key))
    return tuple(sorted(names))


def class_indices(
    labels: pa.Array, classes: tuple[str, ...], *, file: str, column: str
) -> np.ndarray:
    """Each label's index in `classes`; a label the version does not know is an error."""
    index = pc.index_in(labels, value_set=pa.array(classes, pa.string()))
    unknown = pc.is_null(index)
    if pc.any(unknown).as_py():
        where = int(np.flatnonzero(unknown.to_numpy(zero_copy_only=False))[0])
        raise DatasetInvalid(
            f"the label {labels[where].as_py()!r} is not one of the version's classes: "
            "these are different bytes",
            file=file,
            column=column,
        )
    return np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)


def regression_scaling(train: np.ndarray) -> tuple[float, float]:
    """The training target's mean and standard deviation (1 for a constant target)."""
    mean = float(train.mean())
    std = float(train.std())
    return mean, (std if std > 0 and math.isfinite(std) else 1.0)


def class_chart(indices: np.ndarray, classes: tuple[str, ...]) -> ClassChart:
    counts = np.bincount(indices, minlength=len(classes))
    return {"kind": "classes", "labels": list(classes), "counts": [int(c) for c in counts]}


def histogram_chart(values: np.ndarray, *, bins: int = 20) -> HistogramChart:
    counts, edges = np.histogram(values, bins=bins)
    return {
        "kind": "histogram",
        "edges": [float(edge) for edge in edges],
        "counts": [int(c) for c in counts],
    }


def summary_of(
    *,
    task: str,
    rows: int,
    dropped: int,
    split: tuple[np.ndarray, np.ndarray, np.ndarray],
    class_index: np.ndarray | None = None,
    num_classes: int = 0,
    target: np.ndarray | None = None,
) -> Summary:
    train, val, test = split
    summary: Summary = {
        "rows": rows,
        "dropped_rows": dropped,
        "train_rows": len(train),
        "val_rows": len(val),
        "test_rows": len(test),
    }
    if task == "classification" and class_index is not None:
        counts = np.bincount(class_index, minlength=num_classes)
        summary["classes"] = num_classes
        summary["smallest_class_fraction"] = float(counts.min() / rows)
        summary["largest_class_fraction"] = float(counts.max() / rows)
    elif target is not None:
        summary["target_min"] = float(target.min())
        summary["target_max"] = float(target.max())
        summary["target_mean"] = float(target.mean())
    return summary
