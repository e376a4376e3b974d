"""Writes for the catalog: the built-in Iris dataset and MLP architecture."""

from __future__ import annotations

import csv
import hashlib
import statistics
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from portal.catalog.models import Dataset, ModelArchitecture
from workers.files import write_atomic

IRIS_SLUG = "iris"
MLP_SLUG = "mlp"
_IRIS_SOURCE = Path(__file__).resolve().parent / "data" / "iris.csv"
_IRIS_LABEL = "species"

MLP_DESCRIPTION = """A fully connected network for tabular classification.

Hyperparameters (a job may override any of them):
- hidden_sizes: width of each hidden layer, e.g. [32, 32] (1 to 8 layers, 1 to 4096 units each).
- activation: relu, tanh or gelu, applied after every hidden layer.
- dropout: probability of zeroing a hidden unit while training, from 0.0 up to (not incl.) 1.0.
"""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _install_file(source: Path, target: Path) -> None:
    """Copy `source` to `target` unless an identical copy is there, via a temporary name and a
    rename, so a reader (a node fetching by URI) never sees a half-written file."""
    if target.exists() and _sha256(target) == _sha256(source):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, source.read_bytes())


def _describe_csv(path: Path, label_column: str) -> tuple[list[dict[str, Any]], list[str], int]:
    """Standardised numeric features, sorted class labels and row count of a labelled CSV."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    features = [
        {
            "name": column,
            "kind": "numeric",
            "shift": statistics.fmean(float(row[column]) for row in rows),
            "scale": statistics.pstdev(float(row[column]) for row in rows) or 1.0,
        }
        for column in columns
        if column != label_column
    ]
    return features, sorted({row[label_column] for row in rows}), len(rows)


@transaction.atomic
def catalog_ensure_builtins() -> None:
    """Create or refresh the public Iris dataset and MLP architecture. Safe to run again."""
    target = Path(settings.TRAINYARD_STORAGE_ROOT).resolve() / "datasets" / "iris" / "iris.csv"
    _install_file(_IRIS_SOURCE, target)
    features, classes, num_rows = _describe_csv(target, _IRIS_LABEL)
    Dataset.objects.update_or_create(
        slug=IRIS_SLUG,
        defaults={
            "name": "Iris",
            "description": (
                "Fisher's iris flowers: 150 samples of 4 measurements (cm) in 3 species."
            ),
            "owner": None,
            "team": None,
            "is_public": True,
            "state": Dataset.State.READY,
            "state_reason": "",
            "uri": target.as_uri(),
            "sha256": _sha256(target),
            "size_bytes": target.stat().st_size,
            "format": Dataset.Format.CSV,
            "task": Dataset.Task.CLASSIFICATION,
            "target": _IRIS_LABEL,
            "features": features,
            "classes": classes,
            "input_shape": [len(features)],
            "num_rows": num_rows,
            "preprocessing": {
                "missing": "drop",
                "normalization": "standard",
                "split_seed": 0,
                "val_fraction": 0.2,
                "test_fraction": 0.0,
            },
        },
    )
    ModelArchitecture.objects.update_or_create(
        slug=MLP_SLUG,
        defaults={
            "name": "MLP",
            "description": MLP_DESCRIPTION,
            "family": ModelArchitecture.Family.MLP,
            "default_params": {"hidden_sizes": [32, 32], "activation": "relu", "dropout": 0.0},
            "owner": None,
            "team": None,
            "is_public": True,
        },
    )
