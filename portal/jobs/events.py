"""Jobs' channel-layer groups and events, sent after the commit (`portal.lib.realtime`).

PostgreSQL is the truth and every page can rebuild itself from it (the `(attempt, seq)` cursor
for metrics, `id` for logs), so a lost event costs nothing but a reconnect.

Each channel-layer event is the JSON a browser receives, with `type` naming the consumer handler
(`job.state` -> `job_state`); a consumer only renames `type` (`job.state` -> `state`) before
forwarding. Call these helpers from synchronous code only (services, ingest, tasks).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Literal, TypedDict

from django.db.models import OuterRef, Subquery

from portal.cluster.events import CLUSTER_CHANGED, CLUSTER_GROUP
from portal.jobs.models import Attempt, Job, LogLine, MetricPoint
from portal.lib.realtime import GroupMessage, send_on_commit
from workers.messages import LogEntry, MetricEntry

JOBS_ALL_GROUP = "jobs-all"
# The pages of queued jobs: a consumer is in it while its job is queued (see `job_queue_moved`).
JOBS_QUEUE_GROUP = "jobs-queue"
# A job list's `job.states` event carries at most this many jobs, so one message stays small.
STATES_PER_EVENT = 500


def job_group(job_id: int) -> str:
    """One job's page."""
    return f"job-{job_id}"


def user_jobs_group(user_id: int) -> str:
    """One user's job list."""
    return f"jobs-user-{user_id}"


def team_jobs_group(team_id: int) -> str:
    """The job lists of one team's members."""
    return f"jobs-team-{team_id}"


class JobStateEvent(TypedDict):
    type: Literal["job.state"]
    job: int
    name: str
    state: str
    reason: str
    attempt: int | None  # id of the job's latest attempt, the `attempt` of its metric points
    team: int | None


class JobStatesEvent(TypedDict):
    """Many jobs' state events for one job list's group (`job_states_changed`)."""

    type: Literal["job.states"]
    states: list[JobStateEvent]


class JobQueueMovedEvent(TypedDict):
    """A scheduler pass rewrote why-pending reasons; each queued job's page reads its own."""

    type: Literal["job.queue_moved"]


class MetricPointPayload(TypedDict):
    attempt: int
    seq: int
    split: str
    step: int
    epoch: int
    loss: float
    accuracy: float | None
    ts: float  # seconds since the epoch


class JobMetricsEvent(TypedDict):
    type: Literal["job.metrics"]
    job: int
    points: list[MetricPointPayload]


class LogLinePayload(TypedDict):
    attempt: int
    node_rank: int
    seq: int  # contiguous per (attempt, node_rank): the browser's log cursor
    rank: int | None  # the rank that wrote it; null for torchrun's own lines
    local_rank: int | None
    stream: str  # stdout, stderr, or notice (the log was cut at the job's cap)
    line: str
    ts: float


class JobLogsEvent(TypedDict):
    type: Literal["job.logs"]
    job: int
    lines: list[LogLinePayload]


def metric_point_payload(point: MetricPoint) -> MetricPointPayload:
    """The browser's shape of a stored point; backfill and live events use the same one."""
    return {
        "attempt": point.attempt_id,
        "seq": point.seq,
        "split": str(point.split),
        "step": point.step,
        "epoch": point.epoch,
        "loss": point.loss,
        "accuracy": point.accuracy,
        "ts": point.reported_at.timestamp(),
    }


def metric_entry_payload(entry: MetricEntry) -> MetricPointPayload:
    """`metric_point_payload` of the row ingest stores for `entry`, without building it."""
    return {
        "attempt": entry.attempt,
        "seq": entry.seq,
        "split": entry.split,
        "step": entry.step,
        "epoch": entry.epoch,
        "loss": entry.loss,
        "accuracy": entry.accuracy,
        "ts": entry.ts,
    }


def log_line_payload(line: LogLine) -> LogLinePayload:
    """The browser's shape of a stored line; the backfill's and the live events' alike."""
    return {
        "attempt": line.attempt_id,
        "node_rank": line.node_rank,
        "seq": line.seq,
        "rank": line.rank,
        "local_rank": line.local_rank,
        "stream": str(line.stream),
        "line": line.line,
        "ts": line.reported_at.timestamp(),
    }


def log_entry_payload(entry: LogEntry) -> LogLinePayload:
    """`log_line_payload` of the row ingest stores for `entry`."""
    return {
        "attempt": entry.attempt,
        "node_rank": entry.node_rank,
        "seq": entry.seq,
        "rank": entry.rank,
        "local_rank": entry.local_rank,
        "stream": entry.stream,
        "line": entry.line,
        "ts": entry.ts,
    }


class LatestAttempt(enum.Enum):
    LATEST = "latest"


LATEST = LatestAttempt.LATEST


def job_state_event(job: Job, *, attempt_id: int | LatestAttempt | None = LATEST) -> JobStateEvent:
    """The state event for `job` as the instance holds it now (refresh it after an update).

    `attempt_id` is the job's latest attempt when the caller knows it (None: it has none);
    by default it is looked up."""
    if attempt_id is LATEST:
        attempt_id = (
            Attempt.objects.filter(job_id=job.pk).order_by("-number").values_list("pk", flat=True)
        ).first()
    return {
        "type": "job.state",
        "job": job.pk,
        "name": job.name,
        "state": str(job.state),
        "reason": job.state_reason,
        "attempt": attempt_id,
        "team": job.team_id,
    }


def job_state_event_read(job_id: int) -> JobStateEvent | None:
    """The state event of the job as PostgreSQL holds it now, in one query (None: it is gone).
    A queued job's page reads it on each `job.queue_moved`."""
    latest = Attempt.objects.filter(job_id=OuterRef("pk")).order_by("-number").values("pk")[:1]
    row = (
        Job.objects.filter(pk=job_id)
        .annotate(latest_attempt=Subquery(latest))
        .values_list("name", "state", "state_reason", "latest_attempt", "team_id")
        .first()
    )
    if row is None:
        return None
    name, state, reason, attempt_id, team_id = row
    return {
        "type": "job.state",
        "job": job_id,
        "name": name,
        "state": str(state),
        "reason": reason,
        "attempt": attempt_id,
        "team": team_id,
    }


def job_states_changed(events: Iterable[tuple[JobStateEvent, int]]) -> None:
    """Send `(event, owner id)` pairs once the transaction commits, in one fan-out: each
    job's page its own `job.state`, and the job lists (the owner's, the team's, the admins')
    one `job.states` per group with all of theirs.

    A pass that places thousands of jobs then sends each list group a few messages rather
    than one per job (two Redis round trips each)."""
    pages: list[GroupMessage] = []
    lists: dict[str, list[JobStateEvent]] = {}
    for event, owner_id in events:
        pages.append((job_group(event["job"]), event))
        groups = [user_jobs_group(owner_id), JOBS_ALL_GROUP]
        if event["team"] is not None:
            groups.append(team_jobs_group(event["team"]))
        for group in groups:
            lists.setdefault(group, []).append(event)
    if not pages:
        return
    messages = pages
    for group, states in lists.items():
        for at in range(0, len(states), STATES_PER_EVENT):
            batch: JobStatesEvent = {
                "type": "job.states",
                "states": states[at : at + STATES_PER_EVENT],
            }
            messages.append((group, batch))
    # A state change moves the dashboards' figures (the queue, capacity in use): one word for
    # the whole batch.
    messages.append((CLUSTER_GROUP, CLUSTER_CHANGED))
    send_on_commit(messages)


def job_state_changed(job: Job, *, attempt_id: int | LatestAttempt | None = LATEST) -> None:
    """Tell the job's page, its owner's list and the admins' list, once the change commits.

    The payload is taken now, so it describes the state this transaction wrote."""
    job_states_changed([(job_state_event(job, attempt_id=attempt_id), job.owner_id)])


def telemetry_added(
    points: Mapping[int, Iterable[MetricPointPayload]],
    lines: Mapping[int, Iterable[LogLinePayload]],
) -> None:
    """Tell each job's page of its new metric points and log lines (by job id), once the
    transaction commits: one event per job and kind, all of them in one fan-out (ingest
    touches a hundred jobs in a batch; a fan-out per job would cost it a hundred)."""
    messages: list[GroupMessage] = []
    for job_id, job_points in points.items():
        if batch := list(job_points):
            metrics: JobMetricsEvent = {"type": "job.metrics", "job": job_id, "points": batch}
            messages.append((job_group(job_id), metrics))
    for job_id, job_lines in lines.items():
        if logged := list(job_lines):
            logs: JobLogsEvent = {"type": "job.logs", "job": job_id, "lines": logged}
            messages.append((job_group(job_id), logs))
    send_on_commit(messages)


def job_queue_moved() -> None:
    """Tell the pages of queued jobs, once the pass commits, that reasons were rewritten.

    One event per pass whatever the queue's length: a pass may change thousands of sentences
    (an estimate moves, the count of nodes with room changes), and a `job.state` per job would
    cost two Redis round trips each, watched or not. Each page in `JOBS_QUEUE_GROUP` reads its
    own job's state and reason instead, so the cost follows the viewers, not the queue."""
    event: JobQueueMovedEvent = {"type": "job.queue_moved"}
    send_on_commit([(JOBS_QUEUE_GROUP, event)])


def job_metrics_added(job_id: int, points: Iterable[MetricPointPayload]) -> None:
    telemetry_added({job_id: points}, {})


def job_logs_added(job_id: int, lines: Iterable[LogLinePayload]) -> None:
    telemetry_added({}, {job_id: lines})
