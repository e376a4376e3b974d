"""After a batch commits, each job's page hears about its new points and lines at once."""

from __future__ import annotations

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import User

from portal.jobs.models import Attempt
from tests.consumers.support import open_socket, receive_until, session_headers
from tests.ingest.conftest import Streams, log, metric


def test_new_points_and_lines_reach_a_connected_page(
    streams: Streams, running_attempt: Attempt, owner: User
) -> None:
    headers = session_headers(owner)
    job_id = running_attempt.job_id
    ingestor = streams.ingestor()
    # A line already stored, so the page's last backfill message says its connect is done.
    streams.add("logs", log(running_attempt, 0, "starting"))
    streams.drain(ingestor)

    async def scenario() -> None:
        socket = await open_socket(f"/ws/jobs/{job_id}/", headers)
        try:
            backfill = await receive_until(socket, "logs")
            assert [line["line"] for line in backfill["lines"]] == ["starting"]

            for seq in (1, 0, 2):
                streams.add("metrics", metric(running_attempt, seq))
            streams.add("logs", log(running_attempt, 1, "epoch 0 done"))
            assert await sync_to_async(ingestor.run_once)() == 4

            metrics = await socket.receive_json_from(timeout=5)
            # One event per job per batch, in (attempt, seq) order whatever the arrival order.
            assert metrics["type"] == "metrics"
            assert [(p["attempt"], p["seq"]) for p in metrics["points"]] == [
                (running_attempt.pk, 0),
                (running_attempt.pk, 1),
                (running_attempt.pk, 2),
            ]
            assert metrics["points"][0]["loss"] == 1.0
            assert metrics["points"][0]["ts"] == 1_750_000_000.0
            logs = await socket.receive_json_from(timeout=5)
            assert logs == {
                "type": "logs",
                "lines": [
                    {
                        "attempt": running_attempt.pk,
                        "node_rank": 0,
                        "seq": 1,
                        "rank": 0,
                        "local_rank": 0,
                        "stream": "stdout",
                        "line": "epoch 0 done",
                        "ts": 1_750_000_001.0,
                    }
                ],
                # The cursor the page hands back when it reconnects.
                "cursor": f"{running_attempt.pk}.0.1",
            }
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()
