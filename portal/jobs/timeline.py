"""Reads for a job's timeline: the utilisation and memory of the devices its attempts ran on,
from the nodes' health history (`portal.cluster.models.NodeSample`), on the time axis of its
loss curve.

Each placement contributes its node's GPUs that it held (`Placement.gpu_indices`), or the
node's host CPU and memory for a CPU job, between the placement's start and end. Long windows
are cut into at most `MAX_BUCKETS` buckets per device, each with the highest reading in it, so
a spike (or a GPU that never rises) stays visible.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from django.db import connection
from django.utils import timezone

from portal.cluster.models import NodeSample
from portal.jobs.models import Job, Placement

MAX_BUCKETS = 2000


class DeviceSeries(TypedDict):
    attempt: int  # the attempt id, as on metric points
    node: str
    node_rank: int
    device: str  # "gpu<index>" or "cpu"
    t: list[float]  # seconds since the epoch
    utilization: list[float | None]  # percent
    memory: list[float | None]  # percent of the device's memory in use


class JobTimeline(TypedDict):
    start: float | None
    end: float | None
    series: list[DeviceSeries]


def job_timeline(
    *,
    job: Job,
    start: datetime | None = None,
    end: datetime | None = None,
    buckets: int = MAX_BUCKETS,
) -> JobTimeline:
    """The job's devices' readings between `start` and `end` (default: all its placements)."""
    now = timezone.now()
    placements = Placement.objects.filter(attempt__job=job).select_related("node", "attempt")
    windows: list[tuple[Placement, datetime, datetime]] = []
    for placement in placements.order_by("attempt_id", "node_rank"):
        attempt = placement.attempt
        begin = placement.started_at or attempt.started_at or attempt.created_at
        finish = placement.finished_at or attempt.finished_at or now
        if start is not None:
            begin = max(begin, start)
        if end is not None:
            finish = min(finish, end)
        if begin <= finish:
            windows.append((placement, begin, finish))
    timeline: JobTimeline = {"start": None, "end": None, "series": []}
    if not windows:
        return timeline
    lo = min(begin for _p, begin, _f in windows)
    hi = max(finish for _p, _b, finish in windows)
    timeline["start"], timeline["end"] = lo.timestamp(), hi.timestamp()
    width = max((hi - lo).total_seconds(), 1e-3)
    terms: list[str] = []
    params: dict[str, Any] = {"lo": lo.timestamp(), "hi": lo.timestamp() + width, "n": buckets}
    by_key: dict[tuple[int, int, int | None], DeviceSeries] = {}
    for i, (placement, begin, finish) in enumerate(windows):
        gpus: list[int | None] = list(placement.gpu_indices) if placement.gpus else [None]
        for gpu in gpus:
            by_key[(i, placement.node_id, gpu)] = {
                "attempt": placement.attempt_id,
                "node": placement.node.name,
                "node_rank": placement.node_rank,
                "device": "cpu" if gpu is None else f"gpu{gpu}",
                "t": [],
                "utilization": [],
                "memory": [],
            }
        device = "gpu IS NULL" if not placement.gpus else f"gpu = ANY(%(gpus_{i})s)"
        params |= {f"node_{i}": placement.node_id, f"from_{i}": begin, f"to_{i}": finish}
        params[f"gpus_{i}"] = [g for g in gpus if g is not None]
        terms.append(
            f"SELECT {i} AS w, node_id, gpu, at, utilization, memory_used, memory_total "  # noqa: S608
            f"FROM {NodeSample._meta.db_table} WHERE node_id = %(node_{i})s AND {device} "
            f"AND at >= %(from_{i})s AND at <= %(to_{i})s"
        )
    query = (
        "SELECT w, node_id, gpu, extract(epoch FROM min(at)), max(utilization), "  # noqa: S608
        "max(100.0 * memory_used / nullif(memory_total, 0)) "
        f"FROM ({' UNION ALL '.join(terms)}) s "
        "GROUP BY w, node_id, gpu, width_bucket(extract(epoch FROM at), %(lo)s, %(hi)s, %(n)s) "
        "ORDER BY w, node_id, gpu, 4"
    )
    with connection.cursor() as db:
        db.execute(query, params)
        for window, node_id, gpu, at, utilization, memory in db.fetchall():
            series = by_key[(window, node_id, gpu)]
            series["t"].append(float(at))
            series["utilization"].append(utilization)
            series["memory"].append(None if memory is None else float(memory))
    timeline["series"] = list(by_key.values())
    return timeline
