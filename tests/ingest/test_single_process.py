"""Ingest is one process per database: log ids must become visible in the order they were
assigned, or a browser's `after_id` cursor skips lines. A PostgreSQL advisory lock makes a
second ingest refuse to start, and an ingest that lost the lock to another stop."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from django.db import connection

from portal.jobs.models import Attempt, MetricPoint
from portal.ops.ingest import AnotherIngestRunning, IngestLock
from portal.ops.ingest.lock import INGEST_LOCK_KEY
from tests.ingest.conftest import Streams, ingest_command, metric


def lock_holders() -> list[int]:
    """PostgreSQL backends holding the ingest lock in the test database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s AND objid = %s AND objsubid = 1 AND database = ("
            "  SELECT oid FROM pg_database WHERE datname = current_database())",
            [INGEST_LOCK_KEY >> 32, INGEST_LOCK_KEY & 0xFFFF_FFFF],
        )
        return [pid for (pid,) in cursor.fetchall()]


def cut_lock_connection() -> None:
    """As a PostgreSQL restart or a network cut does to the connection holding the lock."""
    [pid] = lock_holders()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 10
    while lock_holders():
        assert time.monotonic() < deadline, "the terminated backend still holds the lock"
        time.sleep(0.02)


@pytest.fixture
def locks() -> Iterator[list[IngestLock]]:
    """Locks a test takes; all released after it, so the test database can be dropped."""
    taken: list[IngestLock] = []
    yield taken
    for lock in taken:
        lock.release()


def new_lock(locks: list[IngestLock]) -> IngestLock:
    lock = IngestLock()
    locks.append(lock)
    return lock


def test_only_one_holder_at_a_time_and_release_frees_it(
    transactional_db: None, locks: list[IngestLock]
) -> None:
    first, second = new_lock(locks), new_lock(locks)

    assert first.acquire()
    assert not second.acquire()
    assert "trainyard ingest" in second.held_by()

    first.release()
    assert second.acquire()


def test_a_second_ingest_command_refuses_to_start_while_one_runs(
    streams: Streams, running_attempt: Attempt, isolated_channel_layer: str
) -> None:
    streams.add("metrics", metric(running_attempt, 0))
    first = ingest_command(streams, isolated_channel_layer, "--consumer", "first")
    second = None
    try:
        # The first ingest stores the point, so it is past taking the lock.
        deadline = time.monotonic() + 30
        while not MetricPoint.objects.exists():
            assert first.poll() is None, first.communicate()[0].decode()
            assert time.monotonic() < deadline, "the first ingest stored nothing"
            time.sleep(0.1)

        second = ingest_command(streams, isolated_channel_layer, "--consumer", "second")
        refusal = second.communicate(timeout=30)[0].decode()

        assert second.returncode == 1, refusal
        assert "another ingest is running against this database" in refusal
        # The refusal says where the running one is.
        assert "trainyard ingest" in refusal
        assert first.poll() is None

        first.send_signal(signal.SIGTERM)
        output = first.communicate(timeout=10)[0].decode()
        assert first.returncode == 0, output
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    # Stopping let go of the lock.
    assert lock_holders() == []


def test_an_ingest_whose_lock_connection_broke_takes_the_lock_again(
    streams: Streams, running_attempt: Attempt, locks: list[IngestLock]
) -> None:
    mine = new_lock(locks)
    assert mine.acquire()
    ingestor = streams.ingestor(lock=mine)
    cut_lock_connection()
    streams.add("metrics", metric(running_attempt, 0))

    assert streams.drain(ingestor) == 1

    assert MetricPoint.objects.count() == 1
    assert len(lock_holders()) == 1
    assert not new_lock(locks).acquire()


def test_an_ingest_that_lost_its_lock_to_another_stops(
    streams: Streams, running_attempt: Attempt, locks: list[IngestLock]
) -> None:
    mine = new_lock(locks)
    assert mine.acquire()
    ingestor = streams.ingestor(lock=mine)
    cut_lock_connection()
    # Another ingest started while our lock's connection was down.
    assert new_lock(locks).acquire()
    streams.add("metrics", metric(running_attempt, 0))

    with pytest.raises(AnotherIngestRunning, match="lost the ingest lock"):
        ingestor.run_once()

    assert not MetricPoint.objects.exists()
    assert streams.pending("metrics") == 0  # never read, so never taken from anyone


def test_run_refuses_to_start_when_the_lock_is_taken(
    streams: Streams, transactional_db: None, locks: list[IngestLock]
) -> None:
    assert new_lock(locks).acquire()
    ingestor = streams.ingestor(lock=new_lock(locks))

    with pytest.raises(AnotherIngestRunning, match="another ingest is running"):
        ingestor.run()

    assert streams.pending("metrics") == 0
