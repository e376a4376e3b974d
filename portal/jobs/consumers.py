"""WebSockets for jobs: one job's live page (`/ws/jobs/<id>/`) and the job list (`/ws/jobs/`).

A consumer checks permission, joins its group, and forwards channel-layer events. The layer is
lossy, so the job page also backfills from PostgreSQL on every connect, from the cursor the
browser sends; see docs/telemetry.md for the protocol.

Refusals accept the socket and then close it with an application code, because a socket
closed before it is accepted reaches the browser as a bare 1006, and the page needs to tell
"sign in again" (4401) and "no such job" (4404) from a network blip it should retry.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404

from portal.accounts.selectors import team_ids_of, user_is_admin
from portal.jobs import selectors
from portal.jobs.events import (
    JOBS_ALL_GROUP,
    JobLogsEvent,
    JobMetricsEvent,
    JobStateEvent,
    LogLinePayload,
    MetricPointPayload,
    job_group,
    job_state_event,
    json_finite,
    log_line_payload,
    metric_point_payload,
    team_jobs_group,
    user_jobs_group,
)
from portal.jobs.models import Job

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404

# Points per backfill message: big enough to fill a chart in a few frames, small enough that
# one frame never stalls the socket.
BACKFILL_CHUNK = 2000
# Lines a page gets when it connects without a log cursor: the tail, not the whole history.
LOG_TAIL = 500
LOG_CHUNK = 1000

Cursor = tuple[int, int]


def authenticated_user(scope: dict[str, Any]) -> AbstractBaseUser | None:
    user = scope.get("user", AnonymousUser())
    return user if user is not None and user.is_authenticated else None


def _query_int(query: dict[str, list[str]], key: str, default: int) -> int:
    # A garbled cursor means "from the beginning": a full backfill is always correct.
    try:
        return int(query[key][0])
    except (KeyError, IndexError, ValueError):
        return default


class JobConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/jobs/<job_id>/?attempt=<a>&seq=<s>[&log=<id>]`: backfill after the cursor, then
    live `metrics`, `logs` and `state` messages."""

    group: str | None = None

    async def connect(self) -> None:
        user = authenticated_user(self.scope)
        if user is None:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        job = await self._visible_job(user, self.scope["url_route"]["kwargs"]["job_id"])
        if job is None:
            # The same answer whether the job is someone else's or does not exist.
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.cursor: Cursor = (_query_int(query, "attempt", 0), _query_int(query, "seq", -1))
        log_after = _query_int(query, "log", -1)
        # Join before reading PostgreSQL: anything committed after the read arrives as an event
        # (the cursor drops what the backfill already sent), so nothing falls in between.
        self.group = job_group(job.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        state = await self._state(job)
        await self.send_json({**state, "type": "state"})
        await self._backfill_metrics(job)
        self.log_cursor = await self._backfill_logs(job, log_after)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The page only listens; reconnecting with a cursor is how it asks for anything.
        return None

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        # A diverged loss is stored as NaN; the browser's JSON.parse would reject it.
        return json.dumps(json_finite(content))

    # ---- channel-layer events ----------------------------------------------------------------

    async def job_metrics(self, event: JobMetricsEvent) -> None:
        points = [p for p in event["points"] if (p["attempt"], p["seq"]) > self.cursor]
        if points:
            self.cursor = (points[-1]["attempt"], points[-1]["seq"])
            await self.send_json({"type": "metrics", "points": points})

    async def job_logs(self, event: JobLogsEvent) -> None:
        lines = [line for line in event["lines"] if line["id"] > self.log_cursor]
        if lines:
            self.log_cursor = max(line["id"] for line in lines)
            await self.send_json({"type": "logs", "lines": lines})

    async def job_state(self, event: JobStateEvent) -> None:
        await self.send_json({**event, "type": "state"})

    # ---- backfill ----------------------------------------------------------------------------

    async def _backfill_metrics(self, job: Job) -> None:
        while True:
            points = await self._points_after(job, self.cursor)
            if points:
                self.cursor = (points[-1]["attempt"], points[-1]["seq"])
                await self.send_json({"type": "metrics", "points": points})
            if len(points) < BACKFILL_CHUNK:
                return

    async def _backfill_logs(self, job: Job, after_id: int) -> int:
        if after_id < 0:
            lines = await self._log_tail(job)
            if lines:
                await self.send_json({"type": "logs", "lines": lines})
            # No lines yet: every line that arrives later is new.
            return lines[-1]["id"] if lines else 0
        while True:
            lines = await self._lines_after(job, after_id)
            if lines:
                after_id = lines[-1]["id"]
                await self.send_json({"type": "logs", "lines": lines})
            if len(lines) < LOG_CHUNK:
                return after_id

    @database_sync_to_async
    def _visible_job(self, user: AbstractBaseUser, job_id: int) -> Job | None:
        try:
            return selectors.job_get_visible(user=user, job_id=job_id)
        except Http404:
            return None

    @database_sync_to_async
    def _state(self, job: Job) -> JobStateEvent:
        return job_state_event(job)

    @database_sync_to_async
    def _points_after(self, job: Job, cursor: Cursor) -> list[MetricPointPayload]:
        points = selectors.metric_points_after(
            job=job, after_attempt=cursor[0], after_seq=cursor[1], limit=BACKFILL_CHUNK
        )
        return [metric_point_payload(point) for point in points]

    @database_sync_to_async
    def _lines_after(self, job: Job, after_id: int) -> list[LogLinePayload]:
        lines = selectors.log_lines_after(job=job, after_id=after_id, limit=LOG_CHUNK)
        return [log_line_payload(line) for line in lines]

    @database_sync_to_async
    def _log_tail(self, job: Job) -> list[LogLinePayload]:
        lines = selectors.log_lines_tail(job=job, limit=LOG_TAIL)
        return [log_line_payload(line) for line in lines]


class JobListConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/jobs/`: `state` messages for the jobs on the user's list.

    Admins join `jobs-all`; everyone else joins their own `jobs-user-<id>` and a
    `jobs-team-<id>` for each of their teams, which together carry every job on their list.
    """

    groups: tuple[str, ...] = ()

    async def connect(self) -> None:
        user = authenticated_user(self.scope)
        if user is None:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if user_is_admin(user):
            self.groups = (JOBS_ALL_GROUP,)
        else:
            teams = await database_sync_to_async(team_ids_of)(user)
            self.groups = (user_jobs_group(user.pk), *map(team_jobs_group, teams))
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        return None

    async def job_state(self, event: JobStateEvent) -> None:
        await self.send_json(
            {
                "type": "state",
                "job": event["job"],
                "name": event["name"],
                "state": event["state"],
                "reason": event["reason"],
            }
        )
