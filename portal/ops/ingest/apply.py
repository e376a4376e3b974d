"""Write one batch of stream entries to PostgreSQL.

`batch_apply` runs inside the caller's transaction: the whole batch commits or none of it does,
and the caller acknowledges the entries only after the commit. Everything here is safe to run
twice on the same entries, because entries are delivered at least once:

- metric points, rank samples and log lines have unique keys (`(attempt, seq)`,
  `(attempt, rank, step)`, `(attempt, node_rank, seq)`): each batch is `COPY`ed into a
  temporary table (psycopg 3's `copy`, the fastest path into PostgreSQL, measured in
  bench/ingest_throughput.py) and moved with `INSERT ... SELECT ... ON CONFLICT DO NOTHING`,
  since COPY alone cannot skip a row that is already there;
- attempt events go through services that are fenced by the attempt id and move state with
  conditional updates, so a repeated `attempt.exited` changes nothing; a `checkpoint.saved`
  is a row with a unique `(attempt, name)`, inserted with ON CONFLICT DO NOTHING;
- a heartbeat is a last-writer-wins snapshot, and its reconciliation with the attempts placed
  on the node compares states, so it too can run twice.
"""

from __future__ import annotations

import logging
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from psycopg import sql

from portal.cluster import services as cluster_services
from portal.cluster.models import Node
from portal.experiments.services import searches_follow_jobs
from portal.jobs import services as job_services
from portal.jobs.events import (
    LogLinePayload,
    MetricPointPayload,
    log_entry_payload,
    metric_entry_payload,
)
from portal.jobs.models import Attempt, JobLogVolume, LogLine, MetricPoint, RankSample
from portal.jobs.phases import attempt_phase_record
from portal.jobs.reconciliation import attempts_reconcile_with_heartbeat
from workers.messages import (
    AttemptExitedEntry,
    AttemptPhaseEntry,
    AttemptStartedEntry,
    CheckpointSavedEntry,
    EventEntry,
    HealthEntry,
    LogEntry,
    MetricEntry,
    RankStatsEntry,
)

logger = logging.getLogger(__name__)


@dataclass
class Batch:
    """Parsed entries of one read, by stream, each list in stream order."""

    metrics: list[MetricEntry] = field(default_factory=list)
    ranks: list[RankStatsEntry] = field(default_factory=list)
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


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Insert `rows` into `table` by COPY through a temporary table, skipping rows whose unique
    key is already stored (a re-delivery). Runs in the caller's transaction."""
    staging = sql.Identifier(f"ingest_{table}")
    target = sql.Identifier(table)
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    # The raw psycopg connection (Django's public `connection.connection`) shares Django's
    # transaction; the staging table lives as long as the session.
    connection.ensure_connection()
    raw = connection.connection
    made = _staging_made.setdefault(raw, set())
    with raw.cursor() as cursor:
        if table not in made:
            cursor.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} AS SELECT {} FROM {} WITH NO DATA"
                ).format(staging, names, target)
            )
            # Made for good only once the transaction that made it commits.
            transaction.on_commit(lambda: made.add(table))
        with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, names)) as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                target, names, names, staging
            )
        )
        # Emptied within the batch's transaction: a rolled-back batch leaves it as it was.
        cursor.execute(sql.SQL("TRUNCATE {}").format(staging))


# The staging tables each database session has made (they last as long as the session).
_staging_made: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


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
    kept = [e for _key, e in sorted(accepted.items())]
    if kept:
        copy_rows(
            MetricPoint._meta.db_table,
            METRIC_COLUMNS,
            (
                (e.job, e.attempt, e.seq, e.split, e.step, e.epoch, e.loss, e.accuracy, _ts(e.ts))
                for e in kept
            ),
        )
    # The live payload is the backfill's shape (`metric_entry_payload` is
    # `metric_point_payload` of the stored row), so a page sees the same point either way.
    points: dict[int, list[MetricPointPayload]] = defaultdict(list)
    for e in kept:
        points[e.job].append(metric_entry_payload(e))
    return dict(points), fenced


METRIC_COLUMNS = (
    "job_id",
    "attempt_id",
    "seq",
    "split",
    "step",
    "epoch",
    "loss",
    "accuracy",
    "reported_at",
)
RANK_COLUMNS = (
    "job_id",
    "attempt_id",
    "node_rank",
    "rank",
    "local_rank",
    "step",
    "steps",
    "step_time_s",
    "samples_per_s",
    "gpu_memory_used",
    "reported_at",
)
LOG_COLUMNS = (
    "job_id",
    "attempt_id",
    "node_rank",
    "rank",
    "local_rank",
    "seq",
    "stream",
    "line",
    "reported_at",
)


def _apply_ranks(entries: list[RankStatsEntry], current: dict[int, int]) -> int:
    accepted: dict[tuple[int, int, int], RankStatsEntry] = {}
    fenced = 0
    for entry in entries:
        if current.get(entry.attempt) != entry.job:
            fenced += 1
            continue
        accepted.setdefault((entry.attempt, entry.rank, entry.step), entry)
    if accepted:
        copy_rows(
            RankSample._meta.db_table,
            RANK_COLUMNS,
            (
                (
                    e.job,
                    e.attempt,
                    e.node_rank,
                    e.rank,
                    e.local_rank,
                    e.step,
                    e.steps,
                    e.step_time_s,
                    e.samples_per_s,
                    e.gpu_memory_used,
                    _ts(e.ts),
                )
                for e in accepted.values()
            ),
        )
    return fenced


def _within_caps(entries: list[LogEntry]) -> list[LogEntry]:
    """The lines of `entries` that fit their job's log caps, in order; counts them into each
    job's `JobLogVolume` (locked, in job order, so two ingests cannot both fill the last
    room). A launcher's `notice` line always fits: it is the one that says the log was cut."""
    max_bytes, max_lines = (
        settings.TRAINYARD_LOG_MAX_BYTES_PER_JOB,
        settings.TRAINYARD_LOG_MAX_LINES_PER_JOB,
    )
    jobs = sorted({e.job for e in entries})
    volumes = {
        v.job_id: v
        for v in JobLogVolume.objects.select_for_update().filter(job_id__in=jobs).order_by("job_id")
    }
    used = {job: (v.bytes, v.lines) for job, v in volumes.items()}
    added: dict[int, list[int]] = {job: [0, 0] for job in jobs}
    truncated: set[int] = set()
    kept = []
    for entry in entries:
        size = len(entry.line.encode("utf-8", "replace")) + 1
        bytes_before, lines_before = used.get(entry.job, (0, 0))
        tally = added[entry.job]
        over = bytes_before + tally[0] + size > max_bytes or lines_before + tally[1] + 1 > max_lines
        if entry.stream == "notice" or over:
            truncated.add(entry.job)
        if over and entry.stream != "notice":
            continue
        tally[0] += size
        tally[1] += 1
        kept.append(entry)
    now = timezone.now()
    upsert = sql.SQL(
        "INSERT INTO {} AS v (job_id, bytes, lines, truncated_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (job_id) DO UPDATE SET bytes = v.bytes + EXCLUDED.bytes, "
        "lines = v.lines + EXCLUDED.lines, "
        "truncated_at = COALESCE(v.truncated_at, EXCLUDED.truncated_at)"
    ).format(sql.Identifier(JobLogVolume._meta.db_table))
    with connection.connection.cursor() as cursor:
        cursor.executemany(
            upsert,
            [
                (job, added[job][0], added[job][1], now if job in truncated else None)
                for job in jobs
            ],
        )
    return kept


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
    kept = _within_caps([e for _key, e in sorted(accepted.items())])
    copy_rows(
        LogLine._meta.db_table,
        LOG_COLUMNS,
        (
            (
                e.job,
                e.attempt,
                e.node_rank,
                e.rank,
                e.local_rank,
                e.seq,
                e.stream,
                e.line,
                _ts(e.ts),
            )
            for e in kept
        ),
    )
    # Browsers page by (attempt, node_rank, seq), so the entry itself is the payload: no
    # read-back of ids.
    lines: dict[int, list[LogLinePayload]] = defaultdict(list)
    for e in kept:
        lines[e.job].append(log_entry_payload(e))
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
        {e.attempt for e in batch.metrics}
        | {e.attempt for e in batch.ranks}
        | {e.attempt for e in batch.logs}
    )
    points, fenced_points = _apply_metrics(batch.metrics, current)
    fenced_ranks = _apply_ranks(batch.ranks, current)
    lines, fenced_lines = _apply_logs(batch.logs, current)
    for event in batch.events:
        if isinstance(event, AttemptStartedEntry):
            job_services.attempt_started(event)
        elif isinstance(event, CheckpointSavedEntry):
            job_services.checkpoint_recorded(event)
        elif isinstance(event, AttemptPhaseEntry):
            attempt_phase_record(event)
        else:
            job_services.attempt_exited(event)
    for entry in sorted(latest.values(), key=lambda entry: entry.node):
        node = cluster_services.node_heartbeat(entry=entry)
        attempts_reconcile_with_heartbeat(node=node, entry=entry)
    # Every heartbeat of the batch, not only the newest: the history behind jobs' timelines.
    cluster_services.node_samples_record(entries=batch.health)
    # A trial's validation points are what its search's pruner judges: its search hears now,
    # not at its next tick (portal.experiments).
    validated = [job for job, new in points.items() if any(p["split"] == "val" for p in new)]
    if validated:
        searches_follow_jobs(job_ids=validated)
    fenced = fenced_points + fenced_ranks + fenced_lines
    if fenced:
        logger.info(
            "dropped %d metric points and log lines from lost or superseded attempts", fenced
        )
    return Applied(points=points, lines=lines, fenced=fenced)
