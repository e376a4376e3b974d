"""The ingest process: `manage.py ingest` stops cleanly on a signal; the loop survives Redis
being away."""

from __future__ import annotations

import logging
import signal
import threading
import time

import pytest

from portal.jobs.models import Attempt, MetricPoint
from portal.ops.ingest import IngestConfig, Ingestor
from tests.ingest.conftest import Streams, ingest_command, metric


def test_the_loop_backs_off_while_redis_is_away_and_stops_when_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on port 1: every connection attempt fails at once.
    ingestor = Ingestor(
        IngestConfig(
            redis_url="redis://127.0.0.1:1/0",
            prefix="nowhere",
            consumer="test",
            backoff_s=0.01,
            max_backoff_s=0.05,
        )
    )
    caplog.set_level(logging.ERROR, logger="portal.ops.ingest.loop")
    thread = threading.Thread(target=ingestor.run)
    thread.start()
    time.sleep(0.5)
    ingestor.stop()
    thread.join(timeout=5)

    assert not thread.is_alive()
    retries = [r for r in caplog.records if "redis unavailable" in r.getMessage()]
    # Backing off (0.01, 0.02, 0.04, then 0.05 s): a handful of tries, not a busy loop.
    assert 3 <= len(retries) <= 15


def test_the_command_stores_entries_and_stops_on_sigterm(
    streams: Streams, running_attempt: Attempt, isolated_channel_layer: str
) -> None:
    streams.add("metrics", metric(running_attempt, 0))
    process = ingest_command(streams, isolated_channel_layer, "--consumer", "cmd")
    try:
        deadline = time.monotonic() + 30
        while not MetricPoint.objects.exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0].decode()
            time.sleep(0.1)
        assert MetricPoint.objects.filter(attempt=running_attempt, seq=0).exists()

        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=10)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, output
    assert "stopped" in output
    assert streams.pending("metrics") == 0
