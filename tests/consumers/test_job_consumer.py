"""`/ws/jobs/<id>/`: who may watch a job, and the backfill-then-live protocol."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import User

from portal.accounts.models import Team
from portal.accounts.services import api_token_create
from portal.jobs.consumers import BACKFILL_CHUNK, LOG_TAIL
from portal.jobs.events import job_group, log_line_payload
from portal.jobs.models import Attempt, Job, LogLine, MetricPoint
from tests.consumers.support import (
    HOST,
    ORIGIN,
    close_code,
    open_socket,
    receive_until,
    session_headers,
)
from tests.factories import make_attempt, make_job

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("isolated_channel_layer"),
]

START = datetime(2025, 6, 1, tzinfo=UTC)


def add_points(attempt: Attempt, seqs: range, *, loss: float = 0.5) -> None:
    MetricPoint.objects.bulk_create(
        MetricPoint(
            job_id=attempt.job_id,
            attempt=attempt,
            seq=seq,
            split=MetricPoint.Split.TRAIN,
            step=seq,
            epoch=0,
            loss=loss,
            accuracy=None,
            reported_at=START + timedelta(seconds=seq),
        )
        for seq in seqs
    )


def add_lines(attempt: Attempt, count: int) -> list[int]:
    lines = LogLine.objects.bulk_create(
        LogLine(
            job_id=attempt.job_id,
            attempt=attempt,
            node_rank=0,
            seq=seq,
            stream=LogLine.Stream.STDOUT,
            line=f"line {seq}",
            reported_at=START,
        )
        for seq in range(count)
    )
    return [line.pk for line in lines]


def cursors(message: dict[str, Any]) -> list[tuple[int, int]]:
    return [(point["attempt"], point["seq"]) for point in message["points"]]


def test_it_closes_an_anonymous_socket_with_4401(owner: User) -> None:
    job = make_job(owner)
    assert async_to_sync(close_code)(f"/ws/jobs/{job.pk}/", session_headers(None)) == 4401


def test_it_answers_another_users_job_as_not_found(owner: User, outsider: User) -> None:
    job = make_job(owner)
    add_points(make_attempt(job), range(3))
    headers = session_headers(outsider)

    assert async_to_sync(close_code)(f"/ws/jobs/{job.pk}/", headers) == 4404
    # The same answer as for a job that does not exist at all.
    assert async_to_sync(close_code)(f"/ws/jobs/{job.pk + 1000}/", headers) == 4404


def test_a_teammate_may_watch_a_team_job(owner: User, teammate: User) -> None:
    job = make_job(owner, team=Team.objects.get(members=teammate.pk), state=Job.State.RUNNING)
    headers = session_headers(teammate)

    async def scenario() -> None:
        socket = await open_socket(f"/ws/jobs/{job.pk}/", headers)
        try:
            state = await socket.receive_json_from(timeout=5)
            assert state["type"] == "state"
            assert state["state"] == "running"
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()


def test_it_backfills_points_after_the_cursor_then_the_state(owner: User) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    lost = make_attempt(job, state=Attempt.State.LOST)
    current = make_attempt(job)
    add_points(lost, range(5))
    add_points(current, range(3))
    headers = session_headers(owner)

    async def scenario() -> None:
        # The page saw the lost attempt up to seq 2 before it dropped.
        socket = await open_socket(f"/ws/jobs/{job.pk}/?attempt={lost.pk}&seq=2", headers)
        try:
            state = await socket.receive_json_from(timeout=5)
            assert state == {
                "type": "state",
                "job": job.pk,
                "name": job.name,
                "state": "running",
                "reason": "",
                "attempt": current.pk,
                "team": None,
            }
            metrics = await socket.receive_json_from(timeout=5)
            assert metrics["type"] == "metrics"
            assert cursors(metrics) == [(lost.pk, 3), (lost.pk, 4)] + [
                (current.pk, seq) for seq in range(3)
            ]
            assert set(metrics["points"][0]) == {
                "attempt",
                "seq",
                "split",
                "step",
                "epoch",
                "loss",
                "accuracy",
                "ts",
            }
            assert metrics["points"][0]["ts"] == (START + timedelta(seconds=3)).timestamp()
            assert await socket.receive_nothing(timeout=0.2)
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()


def test_a_long_backfill_arrives_in_chunks(owner: User) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    total = BACKFILL_CHUNK + 10
    add_points(attempt, range(total))
    headers = session_headers(owner)

    async def scenario() -> None:
        socket = await open_socket(f"/ws/jobs/{job.pk}/", headers)
        try:
            first = await receive_until(socket, "metrics")
            second = await receive_until(socket, "metrics")
            assert len(first["points"]) == BACKFILL_CHUNK
            assert cursors(first) + cursors(second) == [(attempt.pk, s) for s in range(total)]
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()


def test_live_events_never_repeat_what_the_backfill_sent(owner: User) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    add_points(attempt, range(3))
    headers = session_headers(owner)

    def point(seq: int) -> dict[str, Any]:
        return {
            "attempt": attempt.pk,
            "seq": seq,
            "split": "train",
            "step": seq,
            "epoch": 0,
            "loss": 0.5,
            "accuracy": None,
            "ts": 0.0,
        }

    async def scenario() -> None:
        socket = await open_socket(f"/ws/jobs/{job.pk}/", headers)
        try:
            backfill = await receive_until(socket, "metrics")
            assert cursors(backfill) == [(attempt.pk, s) for s in range(3)]
            # An event committed while the backfill was read overlaps it.
            layer = get_channel_layer()
            await layer.group_send(
                job_group(job.pk),
                {"type": "job.metrics", "job": job.pk, "points": [point(s) for s in (1, 2, 3)]},
            )
            live = await socket.receive_json_from(timeout=5)
            assert live == {"type": "metrics", "points": [point(3)]}
            await layer.group_send(
                job_group(job.pk),
                {
                    "type": "job.state",
                    "job": job.pk,
                    "name": job.name,
                    "state": "succeeded",
                    "reason": "",
                    "attempt": attempt.pk,
                    "team": None,
                },
            )
            state = await socket.receive_json_from(timeout=5)
            assert (state["type"], state["state"]) == ("state", "succeeded")
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()


def test_it_sends_the_log_tail_without_a_cursor_and_the_rest_after_one(
    owner: User,
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    add_lines(attempt, LOG_TAIL + 5)
    headers = session_headers(owner)

    async def scenario() -> None:
        socket = await open_socket(f"/ws/jobs/{job.pk}/", headers)
        try:
            tail = await receive_until(socket, "logs")
            assert [line["seq"] for line in tail["lines"]] == list(range(5, LOG_TAIL + 5))
            assert tail["cursor"] == f"{attempt.pk}.0.{LOG_TAIL + 4}"
        finally:
            await socket.disconnect()
        socket = await open_socket(f"/ws/jobs/{job.pk}/?log={attempt.pk}.0.{LOG_TAIL + 2}", headers)
        try:
            rest = await receive_until(socket, "logs")
            assert [line["line"] for line in rest["lines"]] == [
                f"line {seq}" for seq in (LOG_TAIL + 3, LOG_TAIL + 4)
            ]
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()


def test_a_log_batch_that_commits_before_an_earlier_one_is_sent_after_it(owner: User) -> None:
    """Two ingest processes: lines 3-4 commit (and their event arrives) before lines 1-2."""
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    add_lines(attempt, 1)
    headers = session_headers(owner)

    def store(seqs: range) -> list[dict[str, Any]]:
        rows = LogLine.objects.bulk_create(
            LogLine(
                job_id=job.pk,
                attempt=attempt,
                node_rank=0,
                rank=0,
                local_rank=0,
                seq=seq,
                stream=LogLine.Stream.STDOUT,
                line=f"line {seq}",
                reported_at=START,
            )
            for seq in seqs
        )
        return [dict(log_line_payload(row)) for row in rows]

    async def scenario() -> None:
        layer = get_channel_layer()
        socket = await open_socket(f"/ws/jobs/{job.pk}/", headers)
        try:
            tail = await receive_until(socket, "logs")
            assert [line["seq"] for line in tail["lines"]] == [0]
            later = await sync_to_async(store)(range(3, 5))
            await layer.group_send(
                job_group(job.pk), {"type": "job.logs", "job": job.pk, "lines": later}
            )
            # Nothing is sent past the hole at seq 1 (and the page's cursor stays before it).
            assert await socket.receive_nothing(timeout=0.5)
            earlier = await sync_to_async(store)(range(1, 3))
            await layer.group_send(
                job_group(job.pk), {"type": "job.logs", "job": job.pk, "lines": earlier}
            )
            first = await socket.receive_json_from(timeout=5)
            assert [line["seq"] for line in first["lines"]] == [1, 2]
            rest = await socket.receive_json_from(timeout=5)
            assert [line["seq"] for line in rest["lines"]] == [3, 4]
            assert rest["cursor"] == f"{attempt.pk}.0.4"
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()


def test_a_diverged_loss_reaches_the_page_as_null(owner: User) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    add_points(make_attempt(job), range(1), loss=float("nan"))
    headers = session_headers(owner)

    async def scenario() -> None:
        socket = await open_socket(f"/ws/jobs/{job.pk}/", headers)
        try:
            # receive_json_from uses json.loads, which accepts NaN; check the raw frame.
            await socket.receive_from(timeout=5)  # state
            raw = await socket.receive_from(timeout=5)
            assert '"loss": null' in raw
            assert "NaN" not in raw
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()


def test_an_idle_page_stays_connected(owner: User) -> None:
    # channels_redis blocks 5 s per receive; the layer's socket timeout must outlast that.
    job = make_job(owner, state=Job.State.RUNNING)
    headers = session_headers(owner)

    async def scenario() -> None:
        socket = await open_socket(f"/ws/jobs/{job.pk}/", headers)
        try:
            await socket.receive_json_from(timeout=5)  # state
            assert await socket.receive_nothing(timeout=6, interval=0.5)
            await get_channel_layer().group_send(
                job_group(job.pk),
                {
                    "type": "job.state",
                    "job": job.pk,
                    "name": job.name,
                    "state": "failed",
                    "reason": "boom",
                    "attempt": None,
                    "team": None,
                },
            )
            state = await socket.receive_json_from(timeout=5)
            assert state["state"] == "failed"
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()


def test_a_token_authenticates_a_script(owner: User) -> None:
    job = make_job(owner)
    token = api_token_create(user=owner, name="cli").plaintext
    headers = [(b"origin", ORIGIN), (b"host", HOST), (b"authorization", f"Bearer {token}".encode())]

    async def scenario() -> None:
        socket = await open_socket(f"/ws/jobs/{job.pk}/", headers)
        try:
            state = await socket.receive_json_from(timeout=5)
            assert state["job"] == job.pk
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()
