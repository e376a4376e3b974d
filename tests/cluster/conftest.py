"""Cluster test helpers: the health stream the reaper consults, under a prefix of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from pytest_django.fixtures import Settings

from portal.lib.streams import GROUP
from workers.messages import HealthEntry, encode, stream_name


class HealthStream:
    """`<prefix>:health` and its ingest consumer group, as nodes and ingest leave them."""

    def __init__(self, prefix: str, url: str) -> None:
        self.prefix = prefix
        self.name = stream_name(prefix, "health")
        self.redis = redis.Redis.from_url(url)

    def create_group(self) -> None:
        """As ingest does on start: the stream and the group, from the beginning."""
        self.redis.xgroup_create(self.name, GROUP, id="0", mkstream=True)

    def send(self, entry: HealthEntry) -> bytes:
        """A node's heartbeat, not yet read by ingest."""
        return cast(bytes, self.redis.xadd(self.name, {"data": encode(entry)}))

    def read(self, consumer: str = "stalled") -> list[bytes]:
        """Read every new entry as an ingest consumer that has not stored them yet."""
        response = cast(list[Any], self.redis.xreadgroup(GROUP, consumer, {self.name: ">"}))
        return [entry_id for _name, entries in response for entry_id, _fields in entries]

    def ack(self, *entry_ids: bytes) -> None:
        self.redis.xack(self.name, GROUP, *entry_ids)

    def cleanup(self) -> None:
        self.redis.delete(self.name)
        self.redis.close()


@pytest.fixture
def health_stream(settings: Settings) -> Iterator[HealthStream]:
    """A health stream of this test's own (no group yet); the reaper and ingest use it."""
    prefix = f"{settings.TRAINYARD_STREAM_PREFIX}-{uuid.uuid4().hex[:8]}"
    settings.TRAINYARD_STREAM_PREFIX = prefix
    stream = HealthStream(prefix, settings.REDIS_URL)
    yield stream
    stream.cleanup()


@pytest.fixture
def ingest_caught_up(health_stream: HealthStream) -> HealthStream:
    """Ingest is running and has stored every heartbeat: the reaper may judge nodes."""
    health_stream.create_group()
    return health_stream
