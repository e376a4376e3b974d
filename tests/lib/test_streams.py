"""`health_backlog`: whether ingest has stored every heartbeat sent so far (the reaper asks)."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from portal.lib.streams import GROUP, health_backlog
from tests.ingest.conftest import Streams


def heartbeat_id(streams: Streams) -> bytes:
    return streams.add("health", {"node": "n1"})


def read_new(streams: Streams, consumer: str = "busy") -> list[bytes]:
    response = cast(
        list[Any], streams.redis.xreadgroup(GROUP, consumer, {streams.name("health"): ">"})
    )
    return [entry_id for _name, entries in response for entry_id, _fields in entries]


def test_a_group_that_stored_everything_is_not_behind(streams: Streams) -> None:
    streams.ingestor().ensure_groups()
    # No heartbeat yet: nothing to wait for.
    assert health_backlog(streams.redis, prefix=streams.prefix) is None
    stored = heartbeat_id(streams)
    assert read_new(streams) == [stored]
    streams.redis.xack(streams.name("health"), GROUP, stored)

    assert health_backlog(streams.redis, prefix=streams.prefix) is None


def test_unread_and_unstored_heartbeats_are_a_backlog(streams: Streams) -> None:
    streams.ingestor().ensure_groups()
    first = heartbeat_id(streams)

    unread = health_backlog(streams.redis, prefix=streams.prefix)
    assert unread is not None and "wait unread" in unread

    assert read_new(streams) == [first]
    unstored = health_backlog(streams.redis, prefix=streams.prefix)
    assert unstored is not None and "1 pending" in unstored


def test_it_waits_for_a_busy_ingest_and_ignores_heartbeats_sent_after_it_looked(
    streams: Streams,
) -> None:
    streams.ingestor().ensure_groups()
    older = heartbeat_id(streams)
    assert read_new(streams) == [older]

    def ingest_finishes_its_batch_and_reads_the_next() -> None:
        time.sleep(0.2)
        newer = heartbeat_id(streams)
        assert read_new(streams) == [newer]
        # Only the older entry is stored; the newer one stays pending.
        streams.redis.xack(streams.name("health"), GROUP, older)

    busy = threading.Thread(target=ingest_finishes_its_batch_and_reads_the_next)
    busy.start()
    try:
        assert health_backlog(streams.redis, prefix=streams.prefix, wait_s=5) is None
    finally:
        busy.join()
    assert streams.pending("health") == 1
