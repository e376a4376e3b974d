"""The ingest process: `manage.py ingest` stops cleanly on a signal; the loop survives Redis
being away."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from portal.core.ingest import IngestConfig, Ingestor
from portal.jobs.models import Attempt, MetricPoint
from tests.ingest.conftest import Streams, metric

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


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
    caplog.set_level(logging.ERROR, logger="portal.core.ingest.loop")
    thread = threading.Thread(target=ingestor.run)
    thread.start()
    time.sleep(0.5)
    ingestor.stop()
    thread.join(timeout=5)

    assert not thread.is_alive()
    retries = [r for r in caplog.records if "redis unavailable" in r.getMessage()]
    # Backing off (0.01, 0.02, 0.04, then 0.05 s): a handful of tries, not a busy loop.
    assert 3 <= len(retries) <= 15


def _database_url() -> str:
    db = connection.settings_dict
    host, port = db["HOST"], db["PORT"]
    auth = f"{db['USER']}:{db['PASSWORD']}@"
    if host.startswith("/"):
        return f"postgresql://{auth}/{db['NAME']}?host={host}"
    return f"postgresql://{auth}{host}{':' + str(port) if port else ''}/{db['NAME']}"


def test_the_command_stores_entries_and_stops_on_sigterm(
    streams: Streams, running_attempt: Attempt, isolated_channel_layer: str
) -> None:
    streams.add("metrics", metric(running_attempt, 0))
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "TRAINYARD_STREAM_PREFIX": streams.prefix,
        "DJANGO_SETTINGS_MODULE": "tests.ingest.command_settings",
        "TEST_ASGI_PREFIX": isolated_channel_layer,
    }
    process = subprocess.Popen(
        [sys.executable, str(MANAGE_PY), "ingest", "--consumer", "cmd", "--block-ms", "100"],
        env=env,
        cwd=MANAGE_PY.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
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
