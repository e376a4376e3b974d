"""The reaper judges silence only from heartbeats ingest has stored: while ingest is behind on
the health stream (stalled on PostgreSQL or Redis, or not running), it reaps nothing."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django.fixtures import Settings

from portal.cluster.models import Node
from portal.jobs.models import Attempt, Job
from portal.jobs.tasks import reap_nodes
from portal.ops.ingest import IngestConfig, Ingestor
from tests.cluster.conftest import HealthStream
from tests.conftest import Broker
from tests.consumers.support import isolated_channel_layer  # noqa: F401 - a fixture
from tests.factories import make_attempt, make_heartbeat, make_job, make_node
from workers.messages import node_queue


@pytest.fixture(autouse=True)
def six_second_window(settings: Settings) -> None:
    settings.TRAINYARD_HEARTBEAT_S = 2.0
    settings.TRAINYARD_MISSED_HEARTBEATS = 3


def training_on(owner: User, name: str, *, silent_for: float) -> Attempt:
    """A running attempt on a new node whose last stored heartbeat is `silent_for` seconds old."""
    node = make_node(name, last_heartbeat_at=timezone.now() - timedelta(seconds=silent_for))
    return make_attempt(make_job(owner, state=Job.State.RUNNING), nodes=[node])


def states(*attempts: Attempt) -> list[tuple[str, str]]:
    rows = []
    for attempt in attempts:
        attempt.refresh_from_db()
        node = attempt.placements.get().node
        rows.append((node.state, attempt.state))
    return rows


def test_after_an_ingest_stall_the_reaper_waits_for_the_heartbeats_still_in_the_stream(
    transactional_db: None,
    owner: User,
    storage_root: Path,
    ingest_caught_up: HealthStream,
    isolated_channel_layer: str,  # noqa: F811
    broker: Broker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    # Ingest stalled for 30 s (PostgreSQL was away): both nodes' stored heartbeats are old, but
    # only one node really went silent; the other kept sending, into the stream.
    alive = training_on(owner, f"alive-{suffix}", silent_for=30)
    dead = training_on(owner, f"dead-{suffix}", silent_for=30)
    ingest_caught_up.send(make_heartbeat(f"alive-{suffix}", running_attempts=[alive.pk]))
    caplog.set_level(logging.WARNING, logger="portal.cluster.services")

    assert reap_nodes() == 0

    assert states(alive, dead) == [("online", "running"), ("online", "running")]
    assert "not reaping nodes" in caplog.text
    assert "wait unread" in caplog.text

    # Ingest recovers and stores what waited; now silence means silence.
    ingestor = Ingestor(
        IngestConfig(
            redis_url=settings.REDIS_URL,
            prefix=ingest_caught_up.prefix,
            consumer="test",
            block_ms=50,
        )
    )
    assert ingestor.run_once() == 1

    assert reap_nodes() == 1
    assert Node.objects.get(name=f"dead-{suffix}").state == Node.State.OFFLINE
    assert states(alive, dead) == [("online", "running"), ("offline", "lost")]
    broker.take(node_queue(f"alive-{suffix}"))
    broker.take(node_queue(f"dead-{suffix}"))


def test_the_reaper_waits_while_ingest_holds_heartbeats_it_has_not_stored(
    db: None, owner: User, storage_root: Path, ingest_caught_up: HealthStream
) -> None:
    attempt = training_on(owner, f"held-{uuid.uuid4().hex[:8]}", silent_for=30)
    # Ingest read the heartbeat, and its transaction has not committed (or failed and is
    # being retried): the entry is pending, unacknowledged.
    entry_id = ingest_caught_up.send(make_heartbeat("held"))
    assert ingest_caught_up.read() == [entry_id]

    started = time.monotonic()
    assert reap_nodes() == 0
    # A busy ingest gets a moment to finish its batch, not longer.
    assert 0.9 <= time.monotonic() - started < 5
    assert states(attempt) == [("online", "running")]

    ingest_caught_up.ack(entry_id)
    assert reap_nodes() == 1
    assert states(attempt) == [("offline", "lost")]


def test_the_reaper_waits_until_ingest_has_made_its_group(
    db: None,
    owner: User,
    storage_root: Path,
    health_stream: HealthStream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempt = training_on(owner, f"early-{uuid.uuid4().hex[:8]}", silent_for=30)
    caplog.set_level(logging.WARNING, logger="portal.cluster.services")

    # Neither the stream nor the group exists: ingest has never run against this Redis.
    assert reap_nodes() == 0
    assert f"{health_stream.name} does not exist yet" in caplog.text
    # A node wrote to the stream first; ingest has still not made its group.
    health_stream.send(make_heartbeat("early"))
    assert reap_nodes() == 0
    assert "consumer group" in caplog.text
    assert states(attempt) == [("online", "running")]


def test_the_reaper_reaps_nothing_while_redis_is_unreachable(
    db: None,
    owner: User,
    storage_root: Path,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempt = training_on(owner, f"cut-{uuid.uuid4().hex[:8]}", silent_for=30)
    # Nothing listens on port 1. Heartbeats cannot arrive, so their absence proves nothing.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    caplog.set_level(logging.WARNING, logger="portal.cluster.services")

    assert reap_nodes() == 0

    assert "Redis is unavailable" in caplog.text
    assert states(attempt) == [("online", "running")]
    assert Node.objects.filter(state=Node.State.OFFLINE).count() == 0
