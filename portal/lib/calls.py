"""Ask a worker process to compute something and wait for the answer, within a deadline.

The web process must not build models or run user weights, but a few answers are worth a short
wait: a model's dry run before a job is queued, a prediction. The task runs on a worker's
queue and returns JSON; a task that returns `{"error": "..."}` is answering "no" (a shape
error, bad input), which callers show, while a worker that does not answer in time is
`WorkerUnavailable`, which callers turn into a 503 rather than a hung request.
"""

from __future__ import annotations

from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout

from portal.celery import app as celery_app


class WorkerUnavailable(Exception):
    """No worker answered in time (none running, or all busy)."""


def call_and_wait(task: str, *, kwargs: dict[str, Any], queue: str, timeout_s: float) -> Any:
    """Send `task` by name to `queue` and return its JSON result within `timeout_s` seconds.

    An exception raised inside the task is re-raised here as `WorkerUnavailable`: the
    task's own "no" answers are values, so an exception is a failure of the worker.
    """
    result = celery_app.send_task(task, kwargs=kwargs, queue=queue, ignore_result=False)
    try:
        return result.get(timeout=timeout_s, propagate=True)
    except CeleryTimeout:
        result.revoke()
        raise WorkerUnavailable(
            f"no worker on the {queue!r} queue answered within {timeout_s:g} s"
        ) from None
    except Exception as exc:
        raise WorkerUnavailable(f"the worker failed: {exc}") from exc
