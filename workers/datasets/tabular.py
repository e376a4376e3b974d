"""Inspecting and preparing CSV and Parquet tables (the parsing is in `tables`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import pyarrow as pa

from workers.datasets import encode, targets
from workers.datasets.errors import DatasetInvalid
from workers.datasets.inspection import PREVIEW_COLUMNS, PREVIEW_ROWS, Inspection, SchemaField
from workers.datasets.split import split_indices
from workers.datasets.tables import (
    Kind,
    RawTable,
    infer_kind,
    number_values,
    preview_rows,
    text_values,
)
from workers.messages import DatasetFormat, DatasetSpec, PreprocessSpec, Task

Values: TypeAlias = "np.ndarray | pa.Array"


@dataclass(frozen=True)
class Rows:
    """The rows that remain after dropping: each feature's raw values and the target's."""

    features: dict[str, Values]
    target: Values
    count: int
    dropped: int


def _missing(values: Values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return np.isnan(values)
    return np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _take(values: Values, rows: np.ndarray) -> Values:
    if isinstance(values, np.ndarray):
        return values[rows]
    return values.take(pa.array(rows))


def kept_rows(
    table: RawTable, *, kinds: dict[str, Kind], target: str, task: Task, missing: str
) -> Rows:
    """A row without a target is always dropped; under `drop`, so is one missing any feature."""
    features: dict[str, Values] = {
        name: number_values(table, name) if kind == "numeric" else text_values(table, name)
        for name, kind in kinds.items()
    }
    target_values: Values = (
        number_values(table, target) if task == "regression" else text_values(table, target)
    )
    drop = _missing(target_values)
    if missing == "drop":
        for values in features.values():
            drop |= _missing(values)
    keep = np.flatnonzero(~drop)
    return Rows(
        features={name: _take(values, keep) for name, values in features.items()},
        target=_take(target_values, keep),
        count=len(keep),
        dropped=int(drop.sum()),
    )


def inspect_table(
    table: RawTable,
    *,
    format: DatasetFormat,
    target: str,
    task: Task,
    preprocessing: PreprocessSpec,
) -> Inspection:
    file = table.file
    if target not in table.columns:
        header = ", ".join(repr(name) for name in table.columns)
        raise DatasetInvalid(
            f"there is no target column {target!r}; the header has {header}", file=file
        )
    if task == "regression" and infer_kind(table, target) != "numeric":
        raise DatasetInvalid(
            "the target is text, not numbers; regression needs a numeric target",
            file=file,
            column=target,
        )
    kinds = {name: infer_kind(table, name) for name in table.columns if name != target}
    rows = kept_rows(table, kinds=kinds, target=target, task=task, missing=preprocessing.missing)
    if rows.count < 2:
        raise DatasetInvalid(
            f"{rows.count} row(s) remain after dropping {rows.dropped} with missing values; "
            "at least 2 are needed",
            file=file,
        )
    split = split_indices(rows.count, preprocessing)
    train = split[0]
    features = tuple(
        encode.numeric_stats(
            name,
            np.asarray(_take(rows.features[name], train)),
            normalization=preprocessing.normalization,
            file=file,
        )
        if kind == "numeric"
        else encode.categorical_stats(name, _take(rows.features[name], train), file=file)
        for name, kind in kinds.items()
    )
    width = sum(encode.feature_width(feature) for feature in features)
    if width == 0:
        raise DatasetInvalid("the features encode to no inputs", file=file)
    schema: list[SchemaField] = [
        {"name": name, "type": kind, "role": "feature"} for name, kind in kinds.items()
    ]
    target_shift, target_scale = 0.0, 1.0
    if task == "classification":
        assert isinstance(rows.target, pa.Array)
        classes = targets.classes_of(rows.target, file=file, column=target)
        index = targets.class_indices(rows.target, classes, file=file, column=target)
        chart: targets.ClassChart | targets.HistogramChart = targets.class_chart(index, classes)
        summary = targets.summary_of(
            task=task,
            rows=rows.count,
            dropped=rows.dropped,
            split=split,
            class_index=index,
            num_classes=len(classes),
        )
        schema.append({"name": target, "type": "categorical", "role": "target"})
    else:
        assert isinstance(rows.target, np.ndarray)
        classes = ()
        target_shift, target_scale = targets.regression_scaling(rows.target[train])
        chart = targets.histogram_chart(rows.target)
        summary = targets.summary_of(
            task=task, rows=rows.count, dropped=rows.dropped, split=split, target=rows.target
        )
        schema.append({"name": target, "type": "numeric", "role": "target"})
    return Inspection(
        format=format,
        task=task,
        target=target,
        classes=classes,
        features=features,
        input_shape=(width,),
        num_rows=rows.count,
        preprocessing=preprocessing,
        target_shift=target_shift,
        target_scale=target_scale,
        schema=schema,
        preview=preview_rows(table, rows=PREVIEW_ROWS, columns=PREVIEW_COLUMNS, target=target),
        chart=chart,
        summary=summary,
    )


def prepare_table(table: RawTable, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray, int]:
    """(features float32 `[n, width]`, targets, n) with the version's own statistics."""
    file = table.file
    for name in [spec.target, *(feature.name for feature in spec.features)]:
        if name not in table.columns:
            raise DatasetInvalid(
                f"there is no column {name!r} the version was validated with: these are "
                "different bytes",
                file=file,
            )
    kinds: dict[str, Kind] = {feature.name: feature.kind for feature in spec.features}
    rows = kept_rows(
        table,
        kinds=kinds,
        target=spec.target,
        task=spec.task,
        missing=spec.preprocessing.missing,
    )
    features = encode.encode_table(rows.features, spec.features, rows.count)
    return features, target_array(rows.target, spec, file=file), rows.count


def target_array(values: Values, spec: DatasetSpec, *, file: str) -> np.ndarray:
    if spec.task == "classification":
        assert isinstance(values, pa.Array)
        return targets.class_indices(values, spec.classes, file=file, column=spec.target)
    assert isinstance(values, np.ndarray)
    return ((values.astype(np.float64) - spec.target_shift) / spec.target_scale).astype(np.float32)
