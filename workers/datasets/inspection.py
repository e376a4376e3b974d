"""What validation found: the version's `DatasetSpec` fields and what the portal shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import msgspec

from workers.datasets.errors import DatasetInvalid
from workers.datasets.targets import ClassChart, HistogramChart, Summary
from workers.messages import (
    DatasetFormat,
    DatasetSpec,
    FeatureSpec,
    PreprocessSpec,
    Task,
)

PREVIEW_ROWS = 10
PREVIEW_COLUMNS = 50


class SchemaField(TypedDict):
    name: str
    # "numeric" or "categorical" for tables and targets, "channel" for an image channel,
    # "image" for the images themselves.
    type: str
    role: Literal["feature", "target"]


@dataclass(frozen=True)
class Inspection:
    """Every `DatasetSpec` field but `uri` and `sha256`, and the version's schema, preview,
    chart and summary (all JSON-ready)."""

    format: DatasetFormat
    task: Task
    target: str
    classes: tuple[str, ...]
    features: tuple[FeatureSpec, ...]
    input_shape: tuple[int, ...]
    num_rows: int
    preprocessing: PreprocessSpec
    target_shift: float
    target_scale: float
    schema: list[SchemaField]
    # The first rows as text, keyed by column (images: file and label).
    preview: list[dict[str, str]]
    chart: ClassChart | HistogramChart
    summary: Summary

    def spec_fields(self) -> dict[str, Any]:
        """The keyword arguments of `DatasetSpec` besides `uri` and `sha256`."""
        return {
            "format": self.format,
            "task": self.task,
            "target": self.target,
            "classes": self.classes,
            "features": self.features,
            "input_shape": self.input_shape,
            "num_rows": self.num_rows,
            "preprocessing": self.preprocessing,
            "target_shift": self.target_shift,
            "target_scale": self.target_scale,
        }

    def dataset_spec(self, *, uri: str, sha256: str) -> DatasetSpec:
        return DatasetSpec(uri=uri, sha256=sha256, **self.spec_fields())


def checked(inspection: Inspection, *, file: str) -> Inspection:
    """The inspection, once its spec passes the contract's own constraints (as a node checks)."""
    spec = inspection.dataset_spec(uri="file:///validation", sha256="0" * 64)
    try:
        msgspec.convert(msgspec.to_builtins(spec), DatasetSpec, strict=True)
    except msgspec.ValidationError as exc:
        raise DatasetInvalid(f"the version cannot be described: {exc}", file=file) from exc
    return inspection
