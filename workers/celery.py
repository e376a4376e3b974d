"""The node agent's Celery app: `celery -A workers worker -Q node.<name>`.

`python -m workers.node` runs the same worker with the node's health reporter beside it.

JSON only, so nothing that crosses the broker is ever unpickled on a node; no result backend,
because the portal learns outcomes from the event stream, never from task results. The broker
URL is read when the app configures itself, not at import time, so importing the tasks (in a
test, say) needs no environment.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from workers import config

app = Celery("workers", include=["workers.agent"])


@app.on_configure.connect
def _configure(sender: Celery, **kwargs: Any) -> None:
    sender.config_from_object(
        {
            "broker_url": config.redis_url(),
            "broker_connection_retry_on_startup": True,
            "result_backend": None,
            "task_ignore_result": True,
            "task_serializer": "json",
            "accept_content": ["json"],
            "result_serializer": "json",
            # Acknowledge on receipt: a redelivered run_attempt is harmless (the attempt
            # directory is the claim) but a task that is never acknowledged would be redelivered
            # after the visibility timeout, and cancel must not wait behind a stuck message.
            "task_acks_late": False,
            "worker_prefetch_multiplier": 1,
            "worker_hijack_root_logger": True,
            "enable_utc": True,
            "timezone": "UTC",
        }
    )
