"""Webhook tests: a real Celery worker on the control queue, and private addresses allowed
(the receivers listen on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from portal.celery import app as celery_app
from tests.api.conftest import client_for

__all__ = ["client_for"]


@pytest.fixture
def webhook_settings(settings: Any) -> Any:
    settings.TRAINYARD_WEBHOOK_ALLOW_PRIVATE = True
    settings.TRAINYARD_WEBHOOK_BACKOFF_S = 0.3
    settings.TRAINYARD_WEBHOOK_MAX_ATTEMPTS = 3
    settings.TRAINYARD_WEBHOOK_TIMEOUT_S = 5.0
    return settings


@pytest.fixture
def control_worker(transactional_db: None, webhook_settings: Any) -> Iterator[None]:
    """A real Celery worker on the control queue, in this process: it makes the tries."""
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, queues=["control"], loglevel="ERROR"
    ):
        yield
