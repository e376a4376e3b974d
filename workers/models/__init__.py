"""Model architectures: build, dry-run, describe, load custom code, export, predict.

Node plane (no Django): the portal's control worker imports it for the dry run and the form's
fields, nodes for training, the predict worker for serving. See docs/models.md.
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
from workers.models.fields import (
    ARCHITECTURES,
    Architecture,
    ParameterField,
    architecture_info,
    architecture_of,
    parameter_fields,
)
from workers.models.predict import Prediction, predict

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "CustomBuilder",
    "ModelShapeError",
    "ParameterField",
    "Prediction",
    "architecture_info",
    "architecture_name",
    "architecture_of",
    "build_model",
    "custom_model",
    "dry_run",
    "forward_check",
    "load_custom",
    "output_width",
    "parameter_count",
    "parameter_fields",
    "predict",
    "sigmoid_binary",
]
