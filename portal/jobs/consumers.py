"""WebSockets for jobs: one job's live page (`/ws/jobs/<id>/`) and the job list (`/ws/jobs/`).

A consumer checks permission, joins its group, and forwards channel-layer events. The layer is
lossy, so the job page also backfills from PostgreSQL on every connect, from the cursor the
browser sends; see docs/telemetry.md for the protocol.
Refusals close with the codes of `portal.lib.websocket` (4401 sign in again, 4404 no such job).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404

from portal.accounts.selectors import team_ids_of, user_is_admin
from portal.jobs import selectors
from portal.jobs.events import (
    JOBS_ALL_GROUP,
    JOBS_QUEUE_GROUP,
    JobLogsEvent,
    JobMetricsEvent,
    JobQueueMovedEvent,
    JobStateEvent,
    JobStatesEvent,
    LogLinePayload,
    MetricPointPayload,
    job_group,
    job_state_event,
    job_state_event_read,
    log_line_payload,
    metric_point_payload,
    team_jobs_group,
    user_jobs_group,
)
from portal.jobs.models import Job
from portal.jobs.telemetry import LogCursor, log_lines_after, log_lines_tail
from portal.lib.websocket import (
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHENTICATED,
    JsonFiniteConsumer,
    refuse,
    scope_user,
)

# Points per backfill message: big enough to fill a chart in a few frames, small enough that
# one frame never stalls the socket.
BACKFILL_CHUNK = 2000
# Lines a page gets when it connects without a log cursor: the tail, not the whole history.
LOG_TAIL = 500
LOG_CHUNK = 1000

Cursor = tuple[int, int]


def _query_int(query: dict[str, list[str]], key: str, default: int) -> int:
    # A garbled cursor means "from the beginning": a full backfill is always correct.
    try:
        return int(query[key][0])
    except (KeyError, IndexError, ValueError):
        return default


class JobConsumer(JsonFiniteConsumer):
    """`/ws/jobs/<job_id>/?attempt=<a>&seq=<s>[&log=<a.r.s,...>]`: backfill after the
    cursors, then live `metrics`, `logs` and `state` messages.

    While its job is queued the consumer is also in `JOBS_QUEUE_GROUP`: a scheduler pass says
    once that it rewrote why-pending reasons (`job.queue_moved`), and the consumer reads its
    own job's reason and sends a `state` only if it changed."""

    group: str | None = None
    in_queue: bool = False
    # The state and reason the page was sent last.
    shown: tuple[str, str] | None = None
    log_cursor: LogCursor
    # A live line arrived past a hole in its share: read the share again once it fills.
    log_holes: bool = False

    async def connect(self) -> None:
        user = scope_user(self.scope)
        if user is None:
            await refuse(self, CLOSE_UNAUTHENTICATED)
            return
        job = await self._visible_job(user, self.scope["url_route"]["kwargs"]["job_id"])
        if job is None:
            # The same answer whether the job is someone else's or does not exist.
            await refuse(self, CLOSE_NOT_FOUND)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.cursor: Cursor = (_query_int(query, "attempt", 0), _query_int(query, "seq", -1))
        log_after: LogCursor | None = None
        if "log" in query:
            try:
                log_after = LogCursor.parse(query["log"][0])
            except ValueError:
                log_after = LogCursor()  # garbled: from the beginning is always correct
        self.job = job
        # Join before reading PostgreSQL: anything committed after the read arrives as an event
        # (the cursor drops what the backfill already sent), so nothing falls in between.
        self.group = job_group(job.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._follow_queue(queued=job.state == Job.State.QUEUED)
        await self.accept()
        state = await self._state(job)
        await self._show(state)
        await self._follow_queue(queued=state["state"] == Job.State.QUEUED)
        await self._backfill_metrics(job)
        await self._backfill_logs(job, log_after)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        await self._follow_queue(queued=False)

    # ---- channel-layer events ----------------------------------------------------------------

    async def job_metrics(self, event: JobMetricsEvent) -> None:
        points = [p for p in event["points"] if (p["attempt"], p["seq"]) > self.cursor]
        if points:
            self.cursor = (points[-1]["attempt"], points[-1]["seq"])
            await self.send_json({"type": "metrics", "points": points})

    async def job_logs(self, event: JobLogsEvent) -> None:
        # Only the next line of each share goes out; a line past a hole (a batch another
        # ingest process has not committed yet) is read back from PostgreSQL instead, once the
        # event that fills the hole arrives.
        lines = [line for line in event["lines"] if self.log_cursor.take(line)]
        behind = any(
            line["seq"] > self.log_cursor.get((line["attempt"], line["node_rank"]), -1)
            for line in event["lines"]
        )
        if lines:
            await self._send_logs(lines)
        if behind or (lines and self.log_holes):
            self.log_holes = behind
            await self._catch_up_logs()

    async def job_state(self, event: JobStateEvent) -> None:
        await self._show(event)
        await self._follow_queue(queued=event["state"] == Job.State.QUEUED)

    async def job_queue_moved(self, event: JobQueueMovedEvent) -> None:
        await self._read_reason()

    # ---- the queued job's reason ------------------------------------------------------------

    async def _show(self, state: JobStateEvent) -> None:
        self.shown = (state["state"], state["reason"])
        await self.send_json({**state, "type": "state"})

    async def _read_reason(self) -> None:
        state = await self._current_state(self.job.pk)
        if state is None or state["state"] != Job.State.QUEUED:
            # It left the queue: its own `job.state` event tells the page.
            await self._follow_queue(queued=False)
        elif (state["state"], state["reason"]) != self.shown:
            await self._show(state)

    async def _follow_queue(self, *, queued: bool) -> None:
        """Be in `JOBS_QUEUE_GROUP` exactly while the job is queued."""
        if queued and not self.in_queue:
            await self.channel_layer.group_add(JOBS_QUEUE_GROUP, self.channel_name)
            self.in_queue = True
            if self.shown is not None:
                # Joined after the page was sent a state (it was requeued): a pass may have
                # committed in between, so read the reason once now.
                await self._read_reason()
        elif not queued and self.in_queue:
            await self.channel_layer.group_discard(JOBS_QUEUE_GROUP, self.channel_name)
            self.in_queue = False

    # ---- backfill ----------------------------------------------------------------------------

    async def _backfill_metrics(self, job: Job) -> None:
        while True:
            points = await self._points_after(job, self.cursor)
            if points:
                self.cursor = (points[-1]["attempt"], points[-1]["seq"])
                await self.send_json({"type": "metrics", "points": points})
            if len(points) < BACKFILL_CHUNK:
                return

    async def _send_logs(self, lines: list[LogLinePayload]) -> None:
        # The cursor rides along: the page hands it back when it reconnects, so it never has
        # to work one out (it names shares the page has no line of, too).
        await self.send_json({"type": "logs", "lines": lines, "cursor": self.log_cursor.text()})

    async def _backfill_logs(self, job: Job, after: LogCursor | None) -> None:
        self.log_holes = False
        if after is None:
            lines, self.log_cursor = await self._log_tail(job)
            if lines or self.log_cursor:
                await self._send_logs(lines)
            return
        self.log_cursor = after
        await self._catch_up_logs()

    async def _catch_up_logs(self) -> None:
        while True:
            lines, self.log_cursor, more = await self._lines_after(self.job, self.log_cursor)
            if lines:
                await self._send_logs(lines)
            if not (more and lines):
                return

    @database_sync_to_async
    def _visible_job(self, user: AbstractBaseUser, job_id: int) -> Job | None:
        try:
            return selectors.job_get_visible(user=user, job_id=job_id)
        except Http404:
            return None

    @database_sync_to_async
    def _state(self, job: Job) -> JobStateEvent:
        # Read again after joining the groups, so no change falls between the read and them.
        return job_state_event_read(job.pk) or job_state_event(job)

    @database_sync_to_async
    def _current_state(self, job_id: int) -> JobStateEvent | None:
        return job_state_event_read(job_id)

    @database_sync_to_async
    def _points_after(self, job: Job, cursor: Cursor) -> list[MetricPointPayload]:
        points = selectors.metric_points_after(
            job=job, after_attempt=cursor[0], after_seq=cursor[1], limit=BACKFILL_CHUNK
        )
        return [metric_point_payload(point) for point in points]

    @database_sync_to_async
    def _lines_after(
        self, job: Job, cursor: LogCursor
    ) -> tuple[list[LogLinePayload], LogCursor, bool]:
        lines, following, more = log_lines_after(job=job, cursor=cursor, limit=LOG_CHUNK)
        return [log_line_payload(line) for line in lines], following, more

    @database_sync_to_async
    def _log_tail(self, job: Job) -> tuple[list[LogLinePayload], LogCursor]:
        lines, cursor = log_lines_tail(job=job, limit=LOG_TAIL)
        return [log_line_payload(line) for line in lines], cursor


class JobListConsumer(JsonFiniteConsumer):
    """`/ws/jobs/`: `state` messages for the jobs on the user's list (from `job.states`).

    Admins join `jobs-all`; everyone else joins their own `jobs-user-<id>` and a
    `jobs-team-<id>` for each of their teams, which together carry every job on their list.
    """

    groups: tuple[str, ...] = ()

    async def connect(self) -> None:
        user = scope_user(self.scope)
        if user is None:
            await refuse(self, CLOSE_UNAUTHENTICATED)
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

    async def job_states(self, event: JobStatesEvent) -> None:
        # One `state` message per job, as the page has always received them.
        for state in event["states"]:
            await self.send_json(
                {
                    "type": "state",
                    "job": state["job"],
                    "name": state["name"],
                    "state": state["state"],
                    "reason": state["reason"],
                }
            )
