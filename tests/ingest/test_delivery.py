"""At-least-once delivery: nothing is acknowledged before it is stored, and nothing is lost when
a batch fails, ingest restarts, or another ingest dies holding entries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection

from portal.jobs.models import Attempt, MetricPoint
from portal.lib.streams import GROUP
from portal.ops.ingest import BatchFailed
from tests.ingest.conftest import Streams, metric


class Refusal:
    """A trigger that makes PostgreSQL itself refuse some metric points, as a real database
    error would (our own code is not patched)."""

    def refuse(self, condition: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                CREATE OR REPLACE FUNCTION ingest_test_refuse() RETURNS trigger AS $$
                BEGIN
                    IF {condition} THEN RAISE EXCEPTION 'refused by the test'; END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql;
                CREATE OR REPLACE TRIGGER ingest_test_refuse BEFORE INSERT ON jobs_metricpoint
                    FOR EACH ROW EXECUTE FUNCTION ingest_test_refuse();
                """
            )

    def lift(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER IF EXISTS ingest_test_refuse ON jobs_metricpoint;"
                "DROP FUNCTION IF EXISTS ingest_test_refuse();"
            )


@pytest.fixture
def refusal(transactional_db: None) -> Iterator[Refusal]:
    refusal = Refusal()
    yield refusal
    refusal.lift()


def test_a_failed_batch_is_not_acknowledged_and_is_retried(
    streams: Streams, running_attempt: Attempt, refusal: Refusal
) -> None:
    for seq in (0, 1, 2):
        streams.add("metrics", metric(running_attempt, seq))
    ingestor = streams.ingestor(isolate_after=10)
    refusal.refuse("NEW.seq = 2")

    with pytest.raises(BatchFailed):
        ingestor.run_once()

    assert MetricPoint.objects.count() == 0
    assert streams.pending("metrics") == 3

    refusal.lift()
    assert ingestor.run_once() == 3
    assert MetricPoint.objects.count() == 3
    assert streams.pending("metrics") == 0


def test_an_entry_that_keeps_failing_goes_to_the_dead_letter_stream(
    streams: Streams, running_attempt: Attempt, refusal: Refusal
) -> None:
    ids = [streams.add("metrics", metric(running_attempt, seq)) for seq in range(5)]
    refusal.refuse("NEW.seq = 3")
    ingestor = streams.ingestor(isolate_after=2)

    with pytest.raises(BatchFailed):
        ingestor.run_once()
    # The second failure of the same batch: its entries are tried one at a time.
    assert ingestor.run_once() == 5

    seqs = MetricPoint.objects.order_by("seq").values_list("seq", flat=True)
    assert list(seqs) == [0, 1, 2, 4]
    assert streams.pending("metrics") == 0
    dead = streams.redis.xrange(streams.name("dead")) or []
    assert len(dead) == 1
    fields = dead[0][1] or {}
    assert fields[b"stream"] == streams.name("metrics").encode()
    assert fields[b"id"] == ids[3]
    assert b"refused by the test" in fields[b"error"]


def test_a_restarted_ingest_resumes_the_entries_it_had_read(
    streams: Streams, running_attempt: Attempt
) -> None:
    streams.ingestor().ensure_groups()
    for seq in (0, 1):
        streams.add("metrics", metric(running_attempt, seq))
    # The previous run of consumer "host-a" read the entries and died before storing them.
    streams.redis.xreadgroup(GROUP, "host-a", {streams.name("metrics"): ">"}, count=10)
    assert streams.pending("metrics") == 2

    assert streams.drain(streams.ingestor("host-a")) == 2

    assert MetricPoint.objects.count() == 2
    assert streams.pending("metrics") == 0


def test_it_claims_the_entries_of_a_dead_consumer_once_they_are_idle(
    streams: Streams, running_attempt: Attempt
) -> None:
    streams.ingestor().ensure_groups()
    streams.add("metrics", metric(running_attempt, 0))
    streams.redis.xreadgroup(GROUP, "dead-host", {streams.name("metrics"): ">"}, count=10)

    # Not idle long enough: another consumer leaves them alone.
    patient = streams.ingestor("live-host", claim_idle_ms=60_000)
    assert streams.drain(patient) == 0
    assert MetricPoint.objects.count() == 0

    eager = streams.ingestor("live-host", claim_idle_ms=0)
    assert streams.drain(eager) == 1
    assert MetricPoint.objects.count() == 1
    assert streams.pending("metrics") == 0


def test_it_trims_only_what_every_group_has_acknowledged(
    streams: Streams, running_attempt: Attempt
) -> None:
    ingestor = streams.ingestor(claim_every_s=0)
    ingestor.ensure_groups()
    name = streams.name("metrics")
    # Another reader of the stream that has not read anything yet.
    streams.redis.xgroup_create(name, "audit", id="0")
    for seq in range(250):
        streams.add("metrics", metric(running_attempt, seq))

    streams.drain(ingestor)
    ingestor.reclaim_and_trim()
    assert streams.redis.xlen(name) == 250

    streams.redis.xgroup_destroy(name, "audit")
    ingestor.reclaim_and_trim()
    # Trimming is approximate (whole radix-tree nodes), but most acknowledged entries go.
    assert streams.redis.xlen(name) < 100
    assert MetricPoint.objects.count() == 250


def test_it_recreates_a_stream_deleted_under_it(streams: Streams, running_attempt: Attempt) -> None:
    ingestor = streams.ingestor()
    ingestor.ensure_groups()
    streams.redis.delete(streams.name("metrics"))
    streams.add("metrics", metric(running_attempt, 0))

    thread = threading.Thread(target=ingestor.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not MetricPoint.objects.exists():
            assert time.monotonic() < deadline, "the deleted stream's group was not recreated"
            time.sleep(0.05)
    finally:
        ingestor.stop()
        thread.join(timeout=5)
    assert not thread.is_alive()
