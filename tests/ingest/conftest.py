"""Ingest tests: real Redis Streams under a prefix of each test's own, real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from redis.typing import EncodableT, FieldT

from portal.jobs.models import Attempt, Job
from portal.lib.streams import GROUP
from portal.ops.ingest import IngestConfig, Ingestor
from tests.consumers.support import isolated_channel_layer  # noqa: F401 - a fixture
from tests.factories import make_attempt, make_job, make_node

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


class Streams:
    """The five telemetry streams of one test, and ingestors that read them."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.redis = redis.Redis.from_url(settings.REDIS_URL)

    def name(self, kind: str) -> str:
        return f"{self.prefix}:{kind}"

    def add(self, kind: str, payload: dict[str, Any] | str) -> bytes:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        return self.add_raw(kind, {"data": data})

    def add_raw(self, kind: str, fields: dict[FieldT, EncodableT]) -> bytes:
        return cast(bytes, self.redis.xadd(self.name(kind), fields))

    def pending(self, kind: str) -> int:
        try:
            summary = self.redis.xpending(self.name(kind), GROUP)
        except redis.ResponseError:  # no group yet
            return 0
        return int(summary["pending"])

    def ingestor(self, consumer: str = "test", **config: Any) -> Ingestor:
        values: dict[str, Any] = {
            "redis_url": settings.REDIS_URL,
            "prefix": self.prefix,
            "consumer": consumer,
            "block_ms": 50,
            "backoff_s": 0.01,
        }
        values.update(config)
        return Ingestor(IngestConfig(**values))

    def drain(self, ingestor: Ingestor, *, passes: int = 5) -> int:
        """Run passes until one finds nothing; the entries acknowledged in all."""
        total = 0
        for _ in range(passes):
            handled = ingestor.run_once()
            total += handled
            if not handled:
                break
        return total

    def cleanup(self) -> None:
        keys = [
            self.name(kind) for kind in ("metrics", "ranks", "logs", "events", "health", "dead")
        ]
        self.redis.delete(*keys)
        self.redis.close()


@pytest.fixture
def streams(isolated_channel_layer: str) -> Iterator[Streams]:  # noqa: F811
    prefix = f"{settings.TRAINYARD_STREAM_PREFIX}-{uuid.uuid4().hex[:8]}"
    stream_set = Streams(prefix)
    yield stream_set
    stream_set.cleanup()


def database_url() -> str:
    """The test database, as DATABASE_URL for a `manage.py` started by a test."""
    db = connection.settings_dict
    host, port = db["HOST"], db["PORT"]
    auth = f"{db['USER']}:{db['PASSWORD']}@"
    if host.startswith("/"):
        return f"postgresql://{auth}/{db['NAME']}?host={host}"
    return f"postgresql://{auth}{host}{':' + str(port) if port else ''}/{db['NAME']}"


def ingest_command(streams: Streams, channel_prefix: str, *args: str) -> subprocess.Popen[bytes]:
    """`manage.py ingest` against the test database, this test's streams and channel layer."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "TRAINYARD_STREAM_PREFIX": streams.prefix,
        "DJANGO_SETTINGS_MODULE": "tests.ingest.command_settings",
        "TEST_ASGI_PREFIX": channel_prefix,
    }
    return subprocess.Popen(
        [sys.executable, str(MANAGE_PY), "ingest", "--block-ms", "100", *args],
        env=env,
        cwd=MANAGE_PY.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def running_attempt(transactional_db: None, owner: User) -> Attempt:
    """Attempt 1 of a running job, placed on one node."""
    job = make_job(owner, state=Job.State.RUNNING)
    return make_attempt(job, nodes=[make_node("gpu-a")])


def metric(attempt: Attempt, seq: int, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "job": attempt.job_id,
        "attempt": attempt.pk,
        "seq": seq,
        "split": "train",
        "step": seq,
        "epoch": 0,
        "loss": 1.0 / (seq + 1),
        "accuracy": 0.5,
        "ts": 1_750_000_000.0 + seq,
    }
    entry.update(fields)
    return entry


def log(
    attempt: Attempt,
    seq: int,
    line: str,
    *,
    node_rank: int = 0,
    rank: int | None = 0,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "job": attempt.job_id,
        "attempt": attempt.pk,
        "node_rank": node_rank,
        "rank": rank,
        "local_rank": rank,
        "seq": seq,
        "stream": "stdout",
        "line": line,
        "ts": 1_750_000_000.0 + seq,
    } | fields
