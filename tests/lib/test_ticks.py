"""`request_schedule`: one scheduling pass is queued for every burst of changes, after commit.

Against the real Redis broker: the tick lands in the `control` queue, and the pending mark
(`SET NX`, cleared when a pass starts) keeps a burst of commits from queueing more than one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.db import transaction

from portal.lib import ticks
from tests.conftest import Broker

CONTROL = "control"


@pytest.fixture
def control(broker: Broker) -> Iterator[Broker]:
    """The control queue and the pending mark, empty before and after the test."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(ticks.pending_key())
    broker.take(CONTROL)
    yield broker
    client.delete(ticks.pending_key())
    client.close()


def tick_count(broker: Broker) -> int:
    return sum(1 for task in broker.take(CONTROL) if task.name == ticks.SCHEDULER_TICK_TASK)


def test_nothing_is_queued_before_the_commit(db, control, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ticks.request_schedule()
    assert callbacks == [ticks.scheduler_tick_send]
    assert tick_count(control) == 0


def test_a_burst_of_commits_queues_one_tick_until_a_pass_starts(
    db, control, django_capture_on_commit_callbacks
):
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            ticks.request_schedule()
            ticks.request_schedule()
    assert tick_count(control) == 1

    # Once the pass has started, what commits next may need another pass.
    ticks.scheduler_tick_started()
    with django_capture_on_commit_callbacks(execute=True):
        ticks.request_schedule()
    assert tick_count(control) == 1


def test_a_rolled_back_savepoint_does_not_swallow_a_later_request(
    db, control, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        try:
            with transaction.atomic():
                ticks.request_schedule()
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        ticks.request_schedule()
    assert callbacks == [ticks.scheduler_tick_send]
    assert tick_count(control) == 1


def test_the_mark_expires_so_a_lost_tick_delays_passes_only_briefly(db, control):
    ticks.scheduler_tick_send()
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        assert 0 < client.ttl(ticks.pending_key()) <= ticks.PENDING_TTL_S
    finally:
        client.close()
    assert tick_count(control) == 1
