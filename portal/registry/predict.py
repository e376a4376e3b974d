"""Predictions for a model version, made by the `predict` worker while the caller waits.

The web process only checks the request's bounds, builds the self-contained
`PredictRequest` (the version's export, its architecture, the dataset version's
preprocessing) and waits for the worker's answer with `portal.lib.calls.call_and_wait`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from django.conf import settings

from portal.lib.calls import call_and_wait
from portal.registry.models import ModelVersion
from portal.registry.tasks import PREDICT_TASK
from workers.messages import (
    PREDICT_MAX_ROWS,
    PREDICT_QUEUE,
    ExportFile,
    ModelSpec,
    PredictRequest,
)


class PredictionRefused(Exception):
    """The rows cannot be predicted on; the message says why (shown to the caller as a 400)."""


def predict_request(*, version: ModelVersion, rows: list[Any]) -> PredictRequest:
    """The worker's request for `rows` on `version`."""
    weights_format: Literal["safetensors", "torchscript"]
    if version.is_custom:
        weights = ExportFile(uri=version.torchscript_uri, sha256=version.torchscript_sha256)
        weights_format = "torchscript"
    else:
        weights = ExportFile(uri=version.safetensors_uri, sha256=version.safetensors_sha256)
        weights_format = "safetensors"
    return PredictRequest(
        version_id=version.pk,
        model=msgspec.convert(version.architecture, ModelSpec),
        input_shape=tuple(version.input_shape),
        outputs=version.outputs,
        weights=weights,
        weights_format=weights_format,
        dataset=version.dataset.node_spec(),
        rows=rows,
    )


def rows_problem(rows: Any) -> str | None:
    """Why `rows` is not a batch the endpoint takes, or None."""
    if not isinstance(rows, list):
        return '"rows" must be a list of rows.'
    if not rows:
        return '"rows" is empty: send at least one row.'
    if len(rows) > PREDICT_MAX_ROWS:
        return f'"rows" has {len(rows)} rows; send at most {PREDICT_MAX_ROWS} per request.'
    return None


def model_version_predict(*, version: ModelVersion, rows: Any) -> list[dict[str, Any]]:
    """The predictions for `rows`, one per row, in order.

    Raises `PredictionRefused` for rows the endpoint or the dataset's preprocessing refuses,
    and `portal.lib.calls.WorkerUnavailable` when no predict worker answers in time.
    """
    if (problem := rows_problem(rows)) is not None:
        raise PredictionRefused(problem)
    request = predict_request(version=version, rows=rows)
    answer = call_and_wait(
        PREDICT_TASK,
        kwargs={"request": request.to_json()},
        queue=PREDICT_QUEUE,
        timeout_s=settings.TRAINYARD_PREDICT_TIMEOUT_S,
    )
    if not isinstance(answer, dict):
        raise PredictionRefused("the predict worker gave no answer")
    if "error" in answer:
        raise PredictionRefused(str(answer["error"]))
    predictions: list[dict[str, Any]] = answer["predictions"]
    return predictions
