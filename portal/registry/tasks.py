"""The `predict` queue's one task: predictions for a registered model version.

Run only by the `predict` worker process (`celery -A portal worker -Q predict`), never by the
web process, which waits for the answer (`portal.lib.calls.call_and_wait`). The request is
self-contained (`workers.messages.PredictRequest`): the worker reads no database row, and
the node-plane code in `workers.serving` does the work.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from celery import shared_task
from django.conf import settings

from workers.messages import MessageInvalid, PredictRequest

if TYPE_CHECKING:
    from workers.serving import ModelCache

PREDICT_TASK = "portal.registry.tasks.predict"


@cache
def _model_cache() -> ModelCache:
    """The worker process's one model cache, made on its first prediction."""
    # Imported here, not at the top: workers.serving brings torch and the model code, which
    # only the predict worker needs; the web process imports this module when Celery finds
    # its tasks and must stay light.
    from workers.serving import ModelCache

    return ModelCache(settings.TRAINYARD_PREDICT_CACHE_MODELS)


@shared_task(name=PREDICT_TASK, ignore_result=False)
def predict(request: dict[str, Any]) -> dict[str, Any]:
    """`{"predictions": [...]}` for the request's rows, or `{"error": "..."}` (bad rows)."""
    from workers.serving import answer

    try:
        parsed = PredictRequest.from_json(request)
    except MessageInvalid as exc:
        return {"error": f"the prediction request is malformed: {exc}"}
    return dict(answer(parsed, _model_cache()))
