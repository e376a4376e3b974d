"""Ask for a scheduling pass after the commit, without flooding the control queue.

Whatever may let a job start (a submit, a finished attempt, a node coming online or being
undrained) calls `request_schedule()`. Many such changes commit at once (an ingest batch of
exits, a burst of submissions), and one pass covers them all, so a tick is sent only when none
is already waiting: a mark in Redis, set with `SET NX` after the commit and cleared by the pass
when it starts (`scheduler_tick_started`). A change that commits after a pass started sets the
mark again and gets a pass of its own, so none is missed. The mark expires on its own, so a
lost tick message delays passes by at most `PENDING_TTL_S` (and beat ticks every few seconds
anyway).

The scheduler lives in `portal.jobs`; this is plumbing so that apps below it (cluster) can ask.
"""

from __future__ import annotations

import functools
import logging

import redis
from django.conf import settings
from django.db import transaction

from portal.celery import app as celery_app

logger = logging.getLogger(__name__)

SCHEDULER_TICK_TASK = "portal.jobs.tasks.scheduler_tick"
PENDING_TTL_S = 10


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def pending_key() -> str:
    return f"{settings.TRAINYARD_STREAM_PREFIX}:scheduler-tick-pending"


def scheduler_tick_send() -> None:
    """Queue a pass now, unless one is already queued and has not started."""
    try:
        fresh = _redis(settings.REDIS_URL).set(pending_key(), "1", nx=True, ex=PENDING_TTL_S)
    except redis.RedisError:
        # Without the mark, send anyway: a duplicate pass is cheap, a missing one is latency.
        logger.warning("cannot check for a pending scheduler tick; sending one", exc_info=True)
        fresh = True
    if fresh:
        celery_app.send_task(SCHEDULER_TICK_TASK)


def scheduler_tick_started() -> None:
    """Called by the pass before it reads anything: changes from now on need a new tick."""
    try:
        _redis(settings.REDIS_URL).delete(pending_key())
    except redis.RedisError:
        logger.warning("cannot clear the pending scheduler tick mark", exc_info=True)


def request_schedule() -> None:
    """Queue a scheduling pass once the transaction commits (at once outside one)."""
    transaction.on_commit(scheduler_tick_send, robust=True)
