"""Load a CSV dataset into tensors and split it the same way on every rank.

The split and the standardisation statistics depend only on the file and the seed, so every rank
(on every node) computes identical train and validation sets without talking to the others.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from workers.messages import DatasetSpec


class DatasetError(Exception):
    """The dataset cannot be used for this job; the message says which row or column and why."""


@dataclass(frozen=True)
class Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor


def load_csv(path: Path, spec: DatasetSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Features as float32 `[n, len(feature_columns)]` and labels as class indices `[n]`."""
    class_index = {name: i for i, name in enumerate(spec.classes)}
    features: list[list[float]] = []
    labels: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            wanted = [*spec.feature_columns, spec.label_column]
            missing = [column for column in wanted if column not in header]
            if missing:
                raise DatasetError(
                    f"{path.name}: missing column(s) {', '.join(missing)}; "
                    f"the header has {', '.join(header) or 'nothing'}"
                )
            for row in reader:
                line = reader.line_num
                label = (row[spec.label_column] or "").strip()
                if label not in class_index:
                    raise DatasetError(
                        f"{path.name} line {line}: label {label!r} is not one of "
                        f"{', '.join(spec.classes)}"
                    )
                values = []
                for column in spec.feature_columns:
                    raw = row[column]
                    try:
                        value = float(raw)
                    except (TypeError, ValueError):
                        raise DatasetError(
                            f"{path.name} line {line}: column {column!r} has {raw!r}, not a number"
                        ) from None
                    if value != value or value in (float("inf"), float("-inf")):
                        raise DatasetError(
                            f"{path.name} line {line}: column {column!r} is not finite"
                        )
                    values.append(value)
                features.append(values)
                labels.append(class_index[label])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if not features:
        raise DatasetError(f"{path.name} has a header but no rows")
    return (
        torch.tensor(features, dtype=torch.float32),
        torch.tensor(labels, dtype=torch.long),
    )


def split(
    features: torch.Tensor, labels: torch.Tensor, *, seed: int, val_fraction: float
) -> Splits:
    """A seeded shuffle into train and validation, standardised with the train split's stats."""
    count = features.shape[0]
    if count < 2:
        raise DatasetError(f"need at least 2 rows to split into train and validation, got {count}")
    # At least one row on each side, whatever the fraction rounds to.
    val_count = min(max(round(count * val_fraction), 1), count - 1)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(count, generator=generator)
    val_idx, train_idx = order[:val_count], order[val_count:]
    train_x = features[train_idx]
    mean = train_x.mean(dim=0)
    std = train_x.std(dim=0, unbiased=False)
    # A constant column carries no information; dividing by 1 keeps it finite instead of NaN.
    std = torch.where(std > 0, std, torch.ones_like(std))
    return Splits(
        train_x=(train_x - mean) / std,
        train_y=labels[train_idx],
        val_x=(features[val_idx] - mean) / std,
        val_y=labels[val_idx],
    )
