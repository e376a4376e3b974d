"""Model architectures: build, dry-run, load custom code, export, predict.

Node plane (no Django): the portal's control worker imports it for the dry run, nodes for
training, the predict worker for serving. What the form shows of an architecture is in
`workers.hyperparameters`, which imports no torch. See docs/models.md.
"""

from __future__ import annotations

from workers.models.architectures import (
    architecture_name,
    build_model,
    output_width,
    sigmoid_binary,
)
from workers.models.checks import dry_run, forward_check, parameter_count
from workers.models.custom import CustomBuilder, custom_model, load_custom
from workers.models.errors import ModelShapeError
from workers.models.predict import Prediction, predict

__all__ = [
    "CustomBuilder",
    "ModelShapeError",
    "Prediction",
    "architecture_name",
    "build_model",
    "custom_model",
    "dry_run",
    "forward_check",
    "load_custom",
    "output_width",
    "parameter_count",
    "predict",
    "sigmoid_binary",
]
