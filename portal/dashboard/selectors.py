"""Reads for the dashboard and its API: the cluster now (`cluster_summary`), and its history
(`utilisation_series`, `queue_series`).

The page and `/api/v1/cluster/summary/` show the same dict, so a script sees exactly what a
browser does. A normal user sees cluster totals and their own jobs; other users' and teams'
names (the top users by use) only admins see, unless `TRAINYARD_DASHBOARD_SHOW_USERS` is on.
Every read is a fixed number of queries, whatever the number of jobs and nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import (
    Aggregate,
    Avg,
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Max,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Extract, Greatest, Least
from django.urls import reverse
from django.utils import timezone

from portal.accounts.selectors import user_is_admin
from portal.cluster.models import Node
from portal.cluster.selectors import placements_holding_capacity
from portal.dashboard.models import ClusterSample
from portal.jobs.models import Job, MetricPoint, Placement

# States in which a job waits for, or holds, capacity.
WAITING = (Job.State.QUEUED,)
ACTIVE = (Job.State.SCHEDULED, Job.State.RUNNING, Job.State.CANCELLING)
NODE_STATUSES = ("online", "draining", "cordoned", "unhealthy", "offline")
# How far back the wait times of started jobs, and the top users' use, are taken.
WAIT_WINDOW = timedelta(hours=24)
USAGE_WINDOW = timedelta(days=7)
MY_JOBS_SHOWN = 20
TOP_SHOWN = 5
# Points a history series is cut into at most: enough for a chart as wide as a laptop screen.
SERIES_POINTS = 300
SERIES_MAX_HOURS = 24 * 31


class Percentile(Aggregate):
    """PostgreSQL's `percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float) -> None:
        super().__init__(expression, fraction=float(fraction))


def _seconds(expression: Any) -> Extract:
    return Extract(ExpressionWrapper(expression, output_field=DurationField()), "epoch")


def _bucket(field: str, seconds: int) -> Func:
    """`date_bin`: the start of the `seconds`-long bucket `field` falls in."""
    return Func(
        Value(timedelta(seconds=seconds)),
        F(field),
        Value(datetime(2000, 1, 1, tzinfo=UTC)),
        function="date_bin",
        output_field=DateTimeField(),
    )


class PoolSummary(TypedDict):
    name: str
    nodes: int  # online
    gpus: int
    gpus_in_use: int
    cpu_slots: int
    cpu_slots_in_use: int


class Totals(PoolSummary):
    gpus_busy: float  # GPUs' worth of measured utilisation, from the latest heartbeats
    cpu_slots_busy: float  # CPU slots' worth of measured CPU use


class NodeBrief(TypedDict):
    name: str
    status: str
    pool: str


class QueueSummary(TypedDict):
    queued: int
    active: int  # scheduled, running or cancelling
    started: int  # jobs that started within the wait window
    wait_median_s: float | None
    wait_p95_s: float | None
    window_hours: float


class MyJob(TypedDict):
    id: int
    name: str
    state: str
    url: str
    epoch: int | None
    epochs: int | None
    eta_s: float | None
    started_at: float | None  # seconds since the epoch


class UsageRow(TypedDict):
    name: str
    gpu_hours: float
    slot_hours: float


class ClusterSummary(TypedDict):
    at: float  # seconds since the epoch
    pools: list[PoolSummary]
    totals: Totals
    node_states: dict[str, int]
    # Nodes that need a look (anything but online), for admins, with links to their page.
    nodes_attention: list[NodeBrief]
    queue: QueueSummary
    mine: list[MyJob]
    names_shown: bool
    top_users: list[UsageRow] | None
    top_teams: list[UsageRow] | None


def _node_status(row: Mapping[str, Any]) -> str:
    # `Node.status`, from a values() row.
    if row["state"] != Node.State.ONLINE:
        return "offline"
    if row["is_cordoned"]:
        return "cordoned"
    if row["unhealthy_reason"]:
        return "unhealthy"
    return "draining" if row["is_draining"] else "online"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _nodes_now() -> tuple[list[PoolSummary], Totals, dict[str, int], list[NodeBrief]]:
    held = (
        Placement.objects.filter(placements_holding_capacity())
        .values("node_id")
        .annotate(slots=Sum("slots"), gpus=Sum("gpus"))
    )
    in_use = {row["node_id"]: row for row in held}
    rows = Node.objects.values(
        "id",
        "name",
        "pool",
        "state",
        "is_draining",
        "is_cordoned",
        "unhealthy_reason",
        "cpu_slots",
        "gpu_count",
        "health__cpu_percent",
        "health__gpus",
    ).order_by("pool", "name")
    pools: dict[str, PoolSummary] = {}
    totals: Totals = {
        "name": "",
        "nodes": 0,
        "gpus": 0,
        "gpus_in_use": 0,
        "cpu_slots": 0,
        "cpu_slots_in_use": 0,
        "gpus_busy": 0.0,
        "cpu_slots_busy": 0.0,
    }
    states = dict.fromkeys(NODE_STATUSES, 0)
    attention: list[NodeBrief] = []
    for row in rows:
        status = _node_status(row)
        states[status] += 1
        if status != "online":
            attention.append({"name": row["name"], "status": status, "pool": row["pool"]})
        used: Mapping[str, Any] = in_use.get(row["id"], {})
        pool = pools.setdefault(
            row["pool"],
            {
                "name": row["pool"],
                "nodes": 0,
                "gpus": 0,
                "gpus_in_use": 0,
                "cpu_slots": 0,
                "cpu_slots_in_use": 0,
            },
        )
        # Capacity is what online nodes have (a draining node's running jobs still hold it);
        # what an offline node's placements held is not in use any more.
        if status == "offline":
            continue
        for summary in (pool, totals):
            summary["nodes"] += 1
            summary["gpus"] += row["gpu_count"]
            summary["cpu_slots"] += row["cpu_slots"]
            summary["gpus_in_use"] += used.get("gpus") or 0
            summary["cpu_slots_in_use"] += used.get("slots") or 0
        cpu = _number(row["health__cpu_percent"])
        totals["cpu_slots_busy"] += cpu / 100.0 * row["cpu_slots"]
        gpus = row["health__gpus"] if isinstance(row["health__gpus"], list) else []
        totals["gpus_busy"] += sum(
            _number(gpu.get("utilization")) / 100.0 for gpu in gpus if isinstance(gpu, dict)
        )
    totals["gpus_busy"] = round(totals["gpus_busy"], 2)
    totals["cpu_slots_busy"] = round(totals["cpu_slots_busy"], 2)
    return sorted(pools.values(), key=lambda p: p["name"]), totals, states, attention


def _queue_now(now: datetime) -> QueueSummary:
    counts = dict(
        Job.objects.filter(state__in=[*WAITING, *ACTIVE])
        .values("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    wait = _seconds(F("started_at") - F("created_at"))
    started = Job.objects.filter(started_at__gte=now - WAIT_WINDOW).aggregate(
        n=Count("id"), median=Percentile(wait, 0.5), p95=Percentile(wait, 0.95)
    )
    return {
        "queued": sum(counts.get(state, 0) for state in WAITING),
        "active": sum(counts.get(state, 0) for state in ACTIVE),
        "started": started["n"],
        "wait_median_s": started["median"],
        "wait_p95_s": started["p95"],
        "window_hours": WAIT_WINDOW.total_seconds() / 3600,
    }


def cluster_totals_now(*, now: datetime) -> tuple[Totals, QueueSummary]:
    """The cluster-wide figures a sample stores."""
    _, totals, _, _ = _nodes_now()
    return totals, _queue_now(now)


def _epochs_of(job: Job) -> int | None:
    training = job.spec.get("training") if isinstance(job.spec, dict) else None
    epochs = training.get("epochs") if isinstance(training, dict) else None
    return epochs if isinstance(epochs, int) and epochs > 0 else None


def _my_jobs(user: AbstractBaseUser, now: datetime) -> list[MyJob]:
    latest_epoch = (
        MetricPoint.objects.filter(job=OuterRef("pk"))
        .order_by("-attempt_id", "-seq")
        .values("epoch")[:1]
    )
    jobs = (
        Job.objects.filter(owner=user.pk, state__in=[*WAITING, *ACTIVE])
        .annotate(epoch=Subquery(latest_epoch))
        .only("id", "name", "state", "spec", "started_at", "created_at")
        .order_by("-created_at", "-id")[:MY_JOBS_SHOWN]
    )
    mine: list[MyJob] = []
    for job in jobs:
        epochs = _epochs_of(job)
        epoch: int | None = getattr(job, "epoch", None)
        eta = None
        if epoch and epochs and job.started_at is not None and job.state == Job.State.RUNNING:
            # The time per epoch so far, times the epochs left (a resumed job's first
            # epochs ran in an earlier attempt, so this errs long).
            elapsed = (now - job.started_at).total_seconds()
            eta = max(0.0, elapsed / epoch * (epochs - epoch))
        mine.append(
            {
                "id": job.pk,
                "name": job.name,
                "state": str(job.state),
                "url": reverse("jobs:detail", args=[job.pk]),
                "epoch": epoch,
                "epochs": epochs,
                "eta_s": None if eta is None else round(eta, 1),
                "started_at": job.started_at.timestamp() if job.started_at else None,
            }
        )
    return mine


def usage_by(group: str, *, since: datetime, now: datetime, limit: int) -> list[UsageRow]:
    """GPU-hours and CPU-slot-hours held since `since`, by `group` (a path from a
    placement: `"attempt__job__owner__username"`, `"attempt__job__team__name"`), the
    heaviest first. A placement counts from its start to its end (or now) within the window.
    """
    held = _seconds(
        Least(Coalesce("finished_at", Value(now)), Value(now))
        - Greatest("started_at", Value(since))
    )
    rows = (
        Placement.objects.filter(started_at__isnull=False)
        .filter(Q(finished_at__isnull=True) | Q(finished_at__gt=since))
        .exclude(**{f"{group}__isnull": True})
        .values(group)
        .annotate(
            gpu_seconds=Sum(F("gpus") * held, output_field=FloatField()),
            slot_seconds=Sum(F("slots") * held, output_field=FloatField()),
        )
        .order_by("-gpu_seconds", "-slot_seconds", group)[:limit]
    )
    return [
        {
            "name": str(row[group]),
            "gpu_hours": round(max(0.0, row["gpu_seconds"] or 0.0) / 3600, 2),
            "slot_hours": round(max(0.0, row["slot_seconds"] or 0.0) / 3600, 2),
        }
        for row in rows
    ]


# The top users and teams are a week's sums: a minute-old answer is as good, and computing them
# (every placement of the week, joined to its job's owner and team) is the summary's one
# costly read, which every dashboard socket would otherwise repeat after every heartbeat.
TOP_CACHE_KEY = "dashboard:top-usage"
TOP_CACHE_S = 60


def top_usage(*, now: datetime) -> tuple[list[UsageRow], list[UsageRow]]:
    """The top users and teams by use over the last USAGE_WINDOW, at most TOP_CACHE_S old."""
    cached: tuple[list[UsageRow], list[UsageRow]] | None = cache.get(TOP_CACHE_KEY)
    if cached is None:
        since = now - USAGE_WINDOW
        cached = (
            usage_by("attempt__job__owner__username", since=since, now=now, limit=TOP_SHOWN),
            usage_by("attempt__job__team__name", since=since, now=now, limit=TOP_SHOWN),
        )
        cache.set(TOP_CACHE_KEY, cached, TOP_CACHE_S)
    return cached


def names_shown_to(user: AbstractBaseUser) -> bool:
    """Whether `user` may see who else uses the cluster (the top users and teams)."""
    return user_is_admin(user) or bool(settings.TRAINYARD_DASHBOARD_SHOW_USERS)


def cluster_summary(*, user: AbstractBaseUser) -> ClusterSummary:
    """The cluster now, as `user` may see it: capacity and use per pool, node states, the
    queue and recent wait times, the user's own unfinished jobs with their progress, and (for
    admins, or everyone when allowed) the top users and teams by use this week (at most a
    minute old)."""
    now = timezone.now()
    pools, totals, states, attention = _nodes_now()
    admin = user_is_admin(user)
    shown = names_shown_to(user)
    top_users, top_teams = top_usage(now=now) if shown else (None, None)
    return {
        "at": now.timestamp(),
        "pools": pools,
        "totals": totals,
        "node_states": states,
        "nodes_attention": attention if admin else [],
        "queue": _queue_now(now),
        "mine": _my_jobs(user, now),
        "names_shown": shown,
        "top_users": top_users,
        "top_teams": top_teams,
    }


class UtilisationPoint(TypedDict):
    ts: float
    gpus_total: float
    gpus_allocated: float
    gpus_used: float
    cpu_slots_total: float
    cpu_slots_allocated: float
    cpu_slots_used: float
    queued: float
    running: float


def series_bucket_s(hours: float) -> int:
    """The width of one point of a `hours`-long series: at most SERIES_POINTS points, and
    never finer than the samples are taken."""
    return max(int(settings.TRAINYARD_SAMPLE_S), int(hours * 3600 / SERIES_POINTS), 1)


def utilisation_series(*, hours: float) -> list[UtilisationPoint]:
    """The cluster samples of the last `hours`, averaged per bucket, oldest first."""
    now = timezone.now()
    bucket = series_bucket_s(hours)
    fields = [name for name in UtilisationPoint.__annotations__ if name != "ts"]
    rows = (
        ClusterSample.objects.filter(at__gte=now - timedelta(hours=hours))
        .annotate(bucket=_bucket("at", bucket))
        .values("bucket")
        .annotate(**{f"avg_{name}": Avg(name) for name in fields})
        .order_by("bucket")
    )
    points: list[UtilisationPoint] = []
    for row in rows:
        values: Mapping[str, Any] = row
        point: dict[str, float] = {"ts": values["bucket"].timestamp()}
        for name in fields:
            point[name] = round(float(values[f"avg_{name}"] or 0.0), 2)
        points.append(point)  # type: ignore[arg-type]
    return points


class QueuePoint(TypedDict):
    ts: float
    started: int
    wait_median_s: float | None
    wait_p95_s: float | None
    queued_max: int | None


def queue_series(*, hours: float) -> list[QueuePoint]:
    """Per bucket of the last `hours`: how many jobs started and how long they had waited
    (median and p95, from submission to start), and the longest queue a sample saw."""
    now = timezone.now()
    since = now - timedelta(hours=hours)
    bucket = series_bucket_s(hours)
    wait = _seconds(F("started_at") - F("created_at"))
    started = (
        Job.objects.filter(started_at__gte=since)
        .annotate(bucket=_bucket("started_at", bucket))
        .values("bucket")
        .annotate(n=Count("id"), median=Percentile(wait, 0.5), p95=Percentile(wait, 0.95))
    )
    queued = (
        ClusterSample.objects.filter(at__gte=since)
        .annotate(bucket=_bucket("at", bucket))
        .values("bucket")
        .annotate(most=Max("queued"))
    )
    points: dict[datetime, QueuePoint] = {}
    for row in started:
        points[row["bucket"]] = {
            "ts": row["bucket"].timestamp(),
            "started": row["n"],
            "wait_median_s": row["median"],
            "wait_p95_s": row["p95"],
            "queued_max": None,
        }
    for sample in queued:
        point = points.setdefault(
            sample["bucket"],
            {
                "ts": sample["bucket"].timestamp(),
                "started": 0,
                "wait_median_s": None,
                "wait_p95_s": None,
                "queued_max": None,
            },
        )
        point["queued_max"] = sample["most"]
    return [points[key] for key in sorted(points)]


class TimelineRun(TypedDict):
    job: int
    name: str
    owner: str
    state: str  # the job's state now
    start: float  # seconds since the epoch
    end: float | None  # None: still holding the node


class TimelineRow(TypedDict):
    node: str
    runs: list[TimelineRun]


# Placements one timeline draws at most: past that, the admin narrows the range.
TIMELINE_MAX_RUNS = 5000


def runs_timeline(*, hours: float) -> list[TimelineRow]:
    """Per node, the job runs (placements) that held it within the last `hours`, oldest first:
    the admins' Gantt of the cluster, where gaps and fragmentation show. Names of every user
    are in it, so it is for admins only. Nodes without a run in the range are left out."""
    now = timezone.now()
    since = now - timedelta(hours=hours)
    runs = (
        Placement.objects.filter(started_at__isnull=False, started_at__lt=now)
        .filter(Q(finished_at__isnull=True) | Q(finished_at__gt=since))
        .values_list(
            "node__name",
            "attempt__job_id",
            "attempt__job__name",
            "attempt__job__owner__username",
            "attempt__job__state",
            "started_at",
            "finished_at",
        )
        .order_by("node__name", "started_at", "id")[:TIMELINE_MAX_RUNS]
    )
    rows: dict[str, TimelineRow] = {}
    for node, job, name, owner, state, start, end in runs:
        start = start or since  # never None: the filter asks for started placements
        row = rows.setdefault(node, {"node": node, "runs": []})
        row["runs"].append(
            {
                "job": job,
                "name": name,
                "owner": owner,
                "state": state,
                "start": max(start, since).timestamp(),
                "end": end.timestamp() if end is not None else None,
            }
        )
    return list(rows.values())
