"""Fan-out to browsers through the channel layer, always after the transaction commits.

The channel layer is lossy by design: PostgreSQL is the truth and every page can rebuild itself
from it (the `(attempt, seq)` cursor for metrics, `id` for logs). So a failed send is logged and
dropped, never raised into the service that caused it.

Each channel-layer event is the JSON a browser receives, with `type` naming the consumer handler
(`job.state` -> `job_state`); a consumer only renames `type` (`job.state` -> `state`) before
forwarding. Call these helpers from synchronous code only (services, ingest, tasks).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterable
from typing import Any, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from portal.cluster.models import Node
from portal.jobs.models import Attempt, Job, LogLine, MetricPoint

logger = logging.getLogger(__name__)

JOBS_ALL_GROUP = "jobs-all"
NODES_GROUP = "nodes"


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
    id: int
    attempt: int
    node_rank: int
    stream: str
    line: str


class JobLogsEvent(TypedDict):
    type: Literal["job.logs"]
    job: int
    lines: list[LogLinePayload]


class NodeHealthEvent(TypedDict):
    type: Literal["node.health"]
    node: str
    state: str
    is_draining: bool
    health: dict[str, Any]  # the node's latest workers.messages.HealthEntry


def json_finite(value: Any) -> Any:
    """`value` with every NaN or infinite float, however deeply nested in dicts and lists,
    replaced by None.

    Ingest keeps a diverged loss as NaN or infinity (a fact worth recording), but JSON has no
    such numbers and browsers' JSON.parse rejects them: whatever sends stored numbers out (the
    WebSocket, the REST API) passes them through here, so both say null.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_finite(item) for item in value]
    return value


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


def log_line_payload(line: LogLine) -> LogLinePayload:
    return {
        "id": line.pk,
        "attempt": line.attempt_id,
        "node_rank": line.node_rank,
        "stream": str(line.stream),
        "line": line.line,
    }


async def _group_send_all(layer: Any, messages: list[tuple[str, Any]]) -> None:
    for group, message in messages:
        await layer.group_send(group, message)


def _send_on_commit(messages: list[tuple[str, Any]]) -> None:
    def send() -> None:
        try:
            layer = get_channel_layer()
            if layer is not None:
                # One event loop for the whole fan-out rather than one per group.
                async_to_sync(_group_send_all)(layer, messages)
        except Exception:
            logger.warning(
                "Channel-layer send to %s failed; pages catch up from PostgreSQL",
                ", ".join(group for group, _ in messages),
                exc_info=True,
            )

    transaction.on_commit(send)


class _Attempt(enum.Enum):
    LATEST = "latest"


LATEST = _Attempt.LATEST


def job_state_event(job: Job, *, attempt_id: int | _Attempt | None = LATEST) -> JobStateEvent:
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


def job_states_changed(events: Iterable[tuple[JobStateEvent, int]]) -> None:
    """Send `(event, owner id)` pairs to each job's page, its owner's and team's lists and the
    admins' list, once the transaction commits, in one fan-out."""
    messages: list[tuple[str, Any]] = []
    for event, owner_id in events:
        messages += [
            (job_group(event["job"]), event),
            (user_jobs_group(owner_id), event),
            (JOBS_ALL_GROUP, event),
        ]
        if event["team"] is not None:
            messages.append((team_jobs_group(event["team"]), event))
    if messages:
        _send_on_commit(messages)


def job_state_changed(job: Job, *, attempt_id: int | _Attempt | None = LATEST) -> None:
    """Tell the job's page, its owner's list and the admins' list, once the change commits.

    The payload is taken now, so it describes the state this transaction wrote."""
    job_states_changed([(job_state_event(job, attempt_id=attempt_id), job.owner_id)])


def job_metrics_added(job_id: int, points: Iterable[MetricPointPayload]) -> None:
    batch = list(points)
    if batch:
        event: JobMetricsEvent = {"type": "job.metrics", "job": job_id, "points": batch}
        _send_on_commit([(job_group(job_id), event)])


def job_logs_added(job_id: int, lines: Iterable[LogLinePayload]) -> None:
    batch = list(lines)
    if batch:
        event: JobLogsEvent = {"type": "job.logs", "job": job_id, "lines": batch}
        _send_on_commit([(job_group(job_id), event)])


def node_health_changed(node: Node) -> None:
    event: NodeHealthEvent = {
        "type": "node.health",
        "node": node.name,
        "state": str(node.state),
        "is_draining": node.is_draining,
        "health": dict(node.health),
    }
    _send_on_commit([(NODES_GROUP, event)])
