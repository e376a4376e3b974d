"""A page that loses its socket and reconnects with its cursor misses nothing and sees nothing
twice, against a real daphne serving `portal.asgi` and the real Redis channel layer.

Points are committed and announced (`job_metrics_added`, on commit) while the client is
connected, while it is away, and while it is reconnecting (so live events race the backfill),
across a requeue to a second attempt."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection, transaction
from websockets.asyncio.client import ClientConnection, connect

from portal.accounts.services import api_token_create
from portal.devservers import free_port
from portal.jobs.events import job_metrics_added, metric_point_payload
from portal.jobs.models import Attempt, MetricPoint
from tests.factories import make_attempt, make_job

pytestmark = pytest.mark.django_db(transaction=True)

START = datetime(2026, 1, 1, tzinfo=UTC)
Cursor = tuple[int, int]


@pytest.fixture
def daphne(tmp_path: Any) -> Iterator[str]:
    """`ws://127.0.0.1:<port>`: daphne on the test database and the suite's Redis."""
    port = free_port()
    url = urlsplit(os.environ["DATABASE_URL"])
    env = dict(os.environ)
    env.update(
        DATABASE_URL=urlunsplit(url._replace(path="/" + str(connection.settings_dict["NAME"]))),
        DJANGO_SETTINGS_MODULE="portal.settings",
        TRAINYARD_DEV="1",
        TRAINYARD_STATE_DIR=str(tmp_path),
    )
    log = (tmp_path / "daphne.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "portal.asgi:application",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "daphne.log").read_text()) from None
                time.sleep(0.2)
        yield f"ws://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def commit_points(attempt: Attempt, seqs: range) -> None:
    """Store points and announce them after the commit, as ingest does."""
    with transaction.atomic():
        rows = MetricPoint.objects.bulk_create(
            MetricPoint(
                job_id=attempt.job_id,
                attempt=attempt,
                seq=seq,
                split=MetricPoint.Split.TRAIN,
                step=seq,
                epoch=0,
                loss=1.0 / (seq + 1),
                accuracy=None,
                reported_at=START + timedelta(seconds=seq),
            )
            for seq in seqs
        )
        job_metrics_added(attempt.job_id, [metric_point_payload(row) for row in rows])


def in_thread(function: Any) -> Any:
    """`function` for the event loop, in a worker thread that closes its database connection
    afterwards (the test database is dropped at the end, and must have no sessions left)."""

    def run(*args: Any) -> Any:
        try:
            return function(*args)
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)


class Page:
    """What the browser's page keeps: every point it received, and its cursor."""

    def __init__(self) -> None:
        self.received: list[Cursor] = []
        self.cursor: Cursor = (0, -1)

    def take(self, message: dict[str, Any]) -> None:
        if message["type"] == "metrics":
            for point in message["points"]:
                self.received.append((point["attempt"], point["seq"]))
                self.cursor = (point["attempt"], point["seq"])

    async def drain(self, ws: ClientConnection, until: Cursor, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.cursor < until:
            left = deadline - time.monotonic()
            assert left > 0, f"stuck at {self.cursor}, waiting for {until}"
            self.take(json.loads(await asyncio.wait_for(ws.recv(), left)))


def test_a_reconnecting_client_resumes_from_its_cursor_with_no_gap(
    owner: User, daphne: str
) -> None:
    job = make_job(owner, state="running")
    first = make_attempt(job)
    commit_points(first, range(0, 10))
    token = api_token_create(user=owner, name="ws", expires_in=timedelta(hours=1)).plaintext
    headers = {"Authorization": f"Bearer {token}"}
    origin = daphne.replace("ws://", "http://")  # the page's own origin, port included
    page = Page()
    store = in_thread(commit_points)
    second: list[Attempt] = []

    async def run() -> None:
        path = f"{daphne}/ws/jobs/{job.pk}/"
        async with connect(path, origin=origin, additional_headers=headers) as ws:  # type: ignore[arg-type]
            await page.drain(ws, (first.pk, 9))  # the backfill
            await store(first, range(10, 15))  # live
            await page.drain(ws, (first.pk, 14))
        # Away: nobody listens to these events; the rows wait in PostgreSQL.
        await store(first, range(15, 30))
        requeued = await in_thread(make_attempt)(job)
        second.append(requeued)
        await store(requeued, range(0, 5))
        attempt, seq = page.cursor
        resume = f"{path}?attempt={attempt}&seq={seq}"
        async with connect(resume, origin=origin, additional_headers=headers) as ws:  # type: ignore[arg-type]
            # Live events race the backfill: committed while the consumer reads PostgreSQL.
            racing = asyncio.ensure_future(store(requeued, range(5, 40)))
            await page.drain(ws, (requeued.pk, 39))
            await racing
            await store(requeued, range(40, 45))
            await page.drain(ws, (requeued.pk, 44))

    asyncio.run(run())

    expected = [(first.pk, s) for s in range(30)] + [(second[0].pk, s) for s in range(45)]
    assert page.received == expected
