"""Write one batch of stream entries to PostgreSQL.

`batch_apply` runs inside the caller's transaction: the whole batch commits or none of it does,
and the caller acknowledges the entries only after the commit. Everything here is safe to run
twice on the same entries, because entries are delivered at least once:

- metric points and log lines have unique keys (`(attempt, seq)`, `(attempt, node_rank, seq)`)
  and are inserted with ON CONFLICT DO NOTHING;
- attempt events go through services that are fenced by the attempt id and move state with
  conditional updates, so a repeated `attempt.exited` changes nothing; a `checkpoint.saved`
  is a row with a unique `(attempt, name)`, inserted with ON CONFLICT DO NOTHING;
- a heartbeat is a last-writer-wins snapshot, and its reconciliation with the attempts placed
  on the node compares states, so it too can run twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from operator import or_

from django.db.models import Exists, OuterRef, Q

from portal.cluster import services as cluster_services
from portal.cluster.models import Node
from portal.jobs import services as job_services
from portal.jobs.events import (
    LogLinePayload,
    MetricPointPayload,
    log_line_payload,
    metric_point_payload,
)
from portal.jobs.models import Attempt, LogLine, MetricPoint
from portal.jobs.reconciliation import attempts_reconcile_with_heartbeat
from workers.messages import (
    AttemptExitedEntry,
    AttemptStartedEntry,
    CheckpointSavedEntry,
    EventEntry,
    HealthEntry,
    LogEntry,
    MetricEntry,
)

logger = logging.getLogger(__name__)


@dataclass
class Batch:
    """Parsed entries of one read, by stream, each list in stream order."""

    metrics: list[MetricEntry] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)
    events: list[EventEntry] = field(default_factory=list)
    health: list[HealthEntry] = field(default_factory=list)


@dataclass
class Applied:
    """What a committed batch means for browsers: new points and lines per job."""

    points: dict[int, list[MetricPointPayload]] = field(default_factory=dict)
    lines: dict[int, list[LogLinePayload]] = field(default_factory=dict)
    fenced: int = 0


def _current_attempts(attempt_ids: set[int]) -> dict[int, int]:
    """Attempt id -> job id, for those of `attempt_ids` that may still add to their job's history:
    the job's latest attempt, unless the control plane declared it lost.

    The attempt id is the fencing token. A lost attempt is one the control plane decided has
    ended (its node went silent) without hearing from it; if the node was only partitioned, its
    late reports must not be mixed into the job's history, whether or not the job has a next
    attempt yet. Attempts that ended on their own report (succeeded, failed, cancelled) are
    deliberately *not* fenced: the exit event and the last metrics travel on different streams,
    so the exit may be ingested first.
    """
    if not attempt_ids:
        return {}
    newer = Attempt.objects.filter(job=OuterRef("job"), number__gt=OuterRef("number"))
    rows = (
        Attempt.objects.filter(id__in=attempt_ids)
        .exclude(state=Attempt.State.LOST)
        .filter(~Exists(newer))
        .values_list("id", "job_id")
    )
    return dict(rows)


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _apply_metrics(
    entries: list[MetricEntry], current: dict[int, int]
) -> tuple[dict[int, list[MetricPointPayload]], int]:
    accepted: dict[tuple[int, int], MetricEntry] = {}
    fenced = 0
    for entry in entries:
        if current.get(entry.attempt) != entry.job:
            fenced += 1
            continue
        # Within a batch the first copy wins, as ON CONFLICT DO NOTHING does across batches.
        accepted.setdefault((entry.attempt, entry.seq), entry)
    rows = [
        MetricPoint(
            job_id=e.job,
            attempt_id=e.attempt,
            seq=e.seq,
            split=e.split,
            step=e.step,
            epoch=e.epoch,
            loss=e.loss,
            accuracy=e.accuracy,
            reported_at=_ts(e.ts),
        )
        for _key, e in sorted(accepted.items())
    ]
    MetricPoint.objects.bulk_create(rows, ignore_conflicts=True)
    # The live payload of each row is the backfill's (`metric_point_payload`), so a page
    # sees the same point whichever way it arrived.
    points: dict[int, list[MetricPointPayload]] = defaultdict(list)
    for row in rows:
        points[row.job_id].append(metric_point_payload(row))
    return dict(points), fenced


def _apply_logs(
    entries: list[LogEntry], current: dict[int, int]
) -> tuple[dict[int, list[LogLinePayload]], int]:
    accepted: dict[tuple[int, int, int], LogEntry] = {}
    fenced = 0
    for entry in entries:
        if current.get(entry.attempt) != entry.job:
            fenced += 1
            continue
        accepted.setdefault((entry.attempt, entry.node_rank, entry.seq), entry)
    if not accepted:
        return {}, fenced
    LogLine.objects.bulk_create(
        [
            LogLine(
                job_id=e.job,
                attempt_id=e.attempt,
                node_rank=e.node_rank,
                seq=e.seq,
                stream=e.stream,
                line=e.line,
                reported_at=_ts(e.ts),
            )
            for e in accepted.values()
        ],
        ignore_conflicts=True,
    )
    # ON CONFLICT DO NOTHING returns no ids, and browsers use the id as their log cursor, so
    # read the rows back by their unique key: one query, one OR term per (attempt, rank).
    seqs: dict[tuple[int, int], list[int]] = defaultdict(list)
    for attempt_id, node_rank, seq in accepted:
        seqs[(attempt_id, node_rank)].append(seq)
    where = reduce(
        or_,
        (Q(attempt_id=a, node_rank=r, seq__in=s) for (a, r), s in seqs.items()),
    )
    lines: dict[int, list[LogLinePayload]] = defaultdict(list)
    rows = LogLine.objects.filter(where).order_by("id")
    for row in rows.only("id", "job_id", "attempt_id", "node_rank", "stream", "line"):
        lines[row.job_id].append(log_line_payload(row))
    return dict(lines), fenced


def batch_apply(batch: Batch) -> Applied:
    """Write `batch`; the caller holds the transaction. Metrics and logs go first, so a job's
    final points are stored before the exit event that finishes it is applied."""
    # A heartbeat of several from one node in a batch: only the newest matters (a snapshot).
    latest: dict[str, HealthEntry] = {}
    for entry in batch.health:
        if entry.node not in latest or entry.ts >= latest[entry.node].ts:
            latest[entry.node] = entry
    # Lock every node this batch touches (an exit counts against its node, a heartbeat
    # rewrites it) up front and in name order, the order the scheduler pass locks them in, so
    # the two can never deadlock on nodes.
    touched = {
        event.node
        for event in batch.events
        if isinstance(event, AttemptStartedEntry | AttemptExitedEntry)
    } | set(latest)
    if touched:
        list(Node.objects.select_for_update().filter(name__in=touched).order_by("name"))
    current = _current_attempts(
        {e.attempt for e in batch.metrics} | {e.attempt for e in batch.logs}
    )
    points, fenced_points = _apply_metrics(batch.metrics, current)
    lines, fenced_lines = _apply_logs(batch.logs, current)
    for event in batch.events:
        if isinstance(event, AttemptStartedEntry):
            job_services.attempt_started(event)
        elif isinstance(event, CheckpointSavedEntry):
            job_services.checkpoint_recorded(event)
        else:
            job_services.attempt_exited(event)
    for entry in sorted(latest.values(), key=lambda entry: entry.node):
        node = cluster_services.node_heartbeat(entry=entry)
        attempts_reconcile_with_heartbeat(node=node, entry=entry)
    # Every heartbeat of the batch, not only the newest: the history behind jobs' timelines.
    cluster_services.node_samples_record(entries=batch.health)
    fenced = fenced_points + fenced_lines
    if fenced:
        logger.info(
            "dropped %d metric points and log lines from lost or superseded attempts", fenced
        )
    return Applied(points=points, lines=lines, fenced=fenced)
