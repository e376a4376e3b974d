"""Usage accounting: GPU-hours and CPU-slot-hours, per job, per user, per team, over time.

Usage is counted from placements, the one record of what held which node when: a share
counts from its start (`Placement.started_at`) to its end, which is its `finished_at`, or for
a lost attempt the moment it was given up on (it holds nothing from then:
`placements_holding_capacity`), or now while it still runs. A GPU share counts its GPUs, a
CPU share its CPU slots (`Placement.gpus`, `Placement.slots`).

Every figure is an integer number of microseconds (GPU-microseconds, slot-microseconds),
computed per placement in SQL (`EXTRACT(EPOCH ...)` is exact numeric in PostgreSQL) or in
Python from the same rows, so usage per job adds up exactly to the per-user and per-team
totals and to the sum of the buckets of a series. Pages show hours (`Usage.gpu_hours`).
See docs/quotas.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypedDict

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, Least
from django.http import Http404

from portal.accounts.models import Team
from portal.cluster.selectors import ATTEMPT_LOST
from portal.jobs.models import Attempt, Job, Placement

MICROS_PER_HOUR = 3_600_000_000
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True)
class Usage:
    """GPU- and CPU-slot-microseconds held."""

    gpu_us: int = 0
    slot_us: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.gpu_us + other.gpu_us, self.slot_us + other.slot_us)

    @property
    def gpu_hours(self) -> float:
        return self.gpu_us / MICROS_PER_HOUR

    @property
    def cpu_slot_hours(self) -> float:
        return self.slot_us / MICROS_PER_HOUR

    def as_dict(self) -> UsageDict:
        return {
            "gpu_hours": round(self.gpu_hours, 4),
            "cpu_slot_hours": round(self.cpu_slot_hours, 4),
        }


class UsageDict(TypedDict):
    gpu_hours: float
    cpu_slot_hours: float


# ---- one rule, in Python and in SQL ----------------------------------------------------------


def placement_micros(
    placement: Placement, attempt: Attempt, *, since: datetime | None, now: datetime
) -> int:
    """How long `placement` held its share within [since, now], in microseconds."""
    if placement.started_at is None:
        return 0
    end = placement.finished_at
    if end is None:
        end = (attempt.finished_at or now) if attempt.state == ATTEMPT_LOST else now
    end = min(end, now)
    start = placement.started_at if since is None else max(placement.started_at, since)
    return max(0, (end - start) // _MICRO)


def job_usage(job: Job, *, now: datetime, since: datetime | None = None) -> Usage:
    """The job's usage over all its attempts (within [since, now]). Reads
    `job.attempts.all()` and each attempt's `placements.all()`, so a prefetch (the job
    serializer's) makes it free."""
    return attempts_usage(job.attempts.all(), now=now, since=since)


def attempts_usage(
    attempts: Iterable[Attempt], *, now: datetime, since: datetime | None = None
) -> Usage:
    """The usage of these attempts (each with its `placements.all()`, best prefetched)."""
    total = Usage()
    for attempt in attempts:
        for placement in attempt.placements.all():
            held = placement_micros(placement, attempt, since=since, now=now)
            total += Usage(placement.gpus * held, placement.slots * held)
    return total


class _Micros(Func):
    """The microseconds in an interval, never negative, as a bigint (exact: EXTRACT(EPOCH)
    of an interval is numeric)."""

    template = "GREATEST(0, ROUND(EXTRACT(EPOCH FROM (%(expressions)s)) * 1000000))::bigint"
    output_field = BigIntegerField()


def _held(*, since: datetime | None, now: datetime, prefix: str = "") -> _Micros:
    """`placement_micros` as an expression on a placement (reached by `prefix`)."""
    lost = Q(**{f"{prefix}attempt__state": ATTEMPT_LOST})
    end = Coalesce(
        f"{prefix}finished_at",
        Case(
            When(lost, then=Coalesce(f"{prefix}attempt__finished_at", Value(now))),
            default=Value(now),
            output_field=DateTimeField(),
        ),
    )
    start: Any = F(f"{prefix}started_at")
    if since is not None:
        start = Greatest(start, Value(since))
    interval = ExpressionWrapper(Least(end, Value(now)) - start, output_field=DurationField())
    return _Micros(interval)


def _in_window(since: datetime | None, prefix: str = "") -> Q:
    """Placements that may have held anything within the window (the rest count 0)."""
    started = Q(**{f"{prefix}started_at__isnull": False})
    if since is None:
        return started
    return started & (
        Q(**{f"{prefix}finished_at__isnull": True}) | Q(**{f"{prefix}finished_at__gt": since})
    )


def _sums(rows: Iterable[Any], key: str) -> dict[int, Usage]:
    return {
        row[key]: Usage(int(row["gpu_us"] or 0), int(row["slot_us"] or 0))
        for row in rows
        if row[key] is not None
    }


def _placement_sums(held: _Micros) -> dict[str, Sum]:
    return {
        "gpu_us": Sum(F("gpus") * held, output_field=BigIntegerField()),
        "slot_us": Sum(F("slots") * held, output_field=BigIntegerField()),
    }


def usage_by_job(
    jobs: Iterable[int] | None = None, *, since: datetime | None, now: datetime
) -> dict[int, Usage]:
    """Usage of each job (of `jobs`, or every job) within [since, now]; jobs that held
    nothing are left out. One query."""
    placements = Placement.objects.filter(_in_window(since))
    if jobs is not None:
        placements = placements.filter(attempt__job__in=list(jobs))
    rows = (
        placements.values("attempt__job_id")
        .annotate(**_placement_sums(_held(since=since, now=now)))
        .order_by()
    )
    return _sums(rows, "attempt__job_id")


Holder = Literal["owner", "team"]


def usage_by(
    holder: Holder,
    *,
    since: datetime | None,
    now: datetime,
    ids: Iterable[int] | None = None,
) -> dict[int, Usage]:
    """Usage per job owner (user id) or per team (team id) within [since, now], for the
    holders among `ids` (or all). One query."""
    key = f"attempt__job__{holder}_id"
    placements = Placement.objects.filter(_in_window(since))
    if ids is not None:
        placements = placements.filter(**{f"{key}__in": list(ids)})
    rows = (
        placements.values(key).annotate(**_placement_sums(_held(since=since, now=now))).order_by()
    )
    return _sums(rows, key)


def jobs_with_usage(jobs: QuerySet[Job], *, since: datetime | None, now: datetime) -> QuerySet[Job]:
    """`jobs` that held anything within the window, annotated with `gpu_us` and `slot_us`
    (heaviest first), for the usage page's table and the CSV."""
    held = _held(since=since, now=now, prefix="attempts__placements__")
    window = _in_window(since, prefix="attempts__placements__")
    return (
        jobs.filter(window)
        .annotate(
            gpu_us=Sum(F("attempts__placements__gpus") * held, output_field=BigIntegerField()),
            slot_us=Sum(F("attempts__placements__slots") * held, output_field=BigIntegerField()),
        )
        .order_by("-gpu_us", "-slot_us", "-id")
    )


# ---- over time -------------------------------------------------------------------------------


class UsagePoint(TypedDict):
    ts: float  # the bucket's start, seconds since the epoch
    gpu_hours: float
    cpu_slot_hours: float


_SERIES_SQL = """
WITH buckets AS (
    SELECT b AS lo, b + %(width)s AS hi
    FROM generate_series(%(since)s::timestamptz, %(now)s::timestamptz - interval '1 microsecond',
                         %(width)s) AS b
),
shares AS (
    SELECT p.gpus, p.slots, p.started_at AS lo,
           LEAST(COALESCE(p.finished_at,
                          CASE WHEN a.state = %(lost)s THEN COALESCE(a.finished_at, %(now)s)
                               ELSE %(now)s END),
                 %(now)s) AS hi
    FROM jobs_placement p
    JOIN jobs_attempt a ON a.id = p.attempt_id
    JOIN jobs_job j ON j.id = a.job_id
    WHERE p.started_at IS NOT NULL AND p.started_at < %(now)s
      AND (p.finished_at IS NULL OR p.finished_at > %(since)s) {scope}
)
SELECT buckets.lo,
       SUM(shares.gpus * GREATEST(0, ROUND(EXTRACT(EPOCH FROM (
           LEAST(shares.hi, buckets.hi) - GREATEST(shares.lo, buckets.lo))) * 1000000))::bigint),
       SUM(shares.slots * GREATEST(0, ROUND(EXTRACT(EPOCH FROM (
           LEAST(shares.hi, buckets.hi) - GREATEST(shares.lo, buckets.lo))) * 1000000))::bigint)
FROM buckets
LEFT JOIN shares ON shares.lo < buckets.hi AND shares.hi > buckets.lo
GROUP BY buckets.lo
ORDER BY buckets.lo
"""


def usage_series(
    *,
    since: datetime,
    now: datetime,
    bucket: timedelta,
    owner_ids: Iterable[int] | None = None,
    team_ids: Iterable[int] | None = None,
) -> list[tuple[datetime, Usage]]:
    """Usage per `bucket` from `since` to `now`, oldest first, every bucket present (zero
    where nothing ran), of the jobs of `owner_ids` or of `team_ids` (or all jobs when both
    are None; with both, a job of either counts). One query. The buckets add up exactly to
    `usage_by` over the same window."""
    scope, params = "", {}
    parts = []
    if owner_ids is not None:
        parts.append("j.owner_id = ANY(%(owners)s)")
        params["owners"] = list(owner_ids)
    if team_ids is not None:
        parts.append("j.team_id = ANY(%(teams)s)")
        params["teams"] = list(team_ids)
    if parts:
        scope = "AND (" + " OR ".join(parts) + ")"
    with connection.cursor() as cursor:
        cursor.execute(
            _SERIES_SQL.format(scope=scope),
            {"since": since, "now": now, "width": bucket, "lost": ATTEMPT_LOST, **params},  # type: ignore[dict-item]
        )
        return [(lo, Usage(int(gpu or 0), int(slot or 0))) for lo, gpu, slot in cursor.fetchall()]


def series_points(series: list[tuple[datetime, Usage]]) -> list[UsagePoint]:
    return [
        {
            "ts": lo.timestamp(),
            "gpu_hours": round(usage.gpu_hours, 4),
            "cpu_slot_hours": round(usage.cpu_slot_hours, 4),
        }
        for lo, usage in series
    ]


# ---- export ----------------------------------------------------------------------------------

CSV_HEADER = (
    "job",
    "name",
    "owner",
    "team",
    "state",
    "created_at",
    "gpu_hours",
    "cpu_slot_hours",
    "gpu_microseconds",
    "cpu_slot_microseconds",
)


def usage_csv_rows(
    jobs: QuerySet[Job], *, since: datetime | None, now: datetime
) -> Iterator[tuple[Any, ...]]:
    """One row per job that held anything within the window (heaviest first), read with a
    server-side cursor so an export of a year of jobs streams in constant memory."""
    yield CSV_HEADER
    fields = ("id", "name", "owner__username", "team__name", "state", "created_at")
    # The annotations' names are not model fields: django-stubs cannot see them.
    rows: Any = jobs_with_usage(jobs, since=since, now=now).values_list(
        *fields, "gpu_us", "slot_us"
    )
    for job_id, name, owner, team, state, created, gpu_us, slot_us in rows.iterator(
        chunk_size=2000
    ):
        usage = Usage(int(gpu_us or 0), int(slot_us or 0))
        yield (
            job_id,
            name,
            owner,
            team or "",
            state,
            created.isoformat(),
            f"{usage.gpu_hours:.6f}",
            f"{usage.cpu_slot_hours:.6f}",
            usage.gpu_us,
            usage.slot_us,
        )


# ---- who sees whose usage --------------------------------------------------------------------


@dataclass(frozen=True)
class UsageScope:
    """Whose usage a page, the API or an export shows: jobs of `owner_ids` or of
    `team_ids` (both None: the whole cluster, for admins)."""

    label: str
    owner_ids: tuple[int, ...] | None = None
    team_ids: tuple[int, ...] | None = None

    def jobs(self, visible: QuerySet[Job]) -> QuerySet[Job]:
        if self.owner_ids is not None:
            return visible.filter(owner__in=self.owner_ids)
        if self.team_ids is not None:
            return visible.filter(team__in=self.team_ids)
        return visible

    def totals(self, *, since: datetime, now: datetime) -> Usage:
        if self.owner_ids is not None:
            spent = usage_by("owner", since=since, now=now, ids=self.owner_ids)
        elif self.team_ids is not None:
            spent = usage_by("team", since=since, now=now, ids=self.team_ids)
        else:
            spent = usage_by("owner", since=since, now=now)
            # Jobs of deleted owners do not exist (PROTECT): the owners' sum is the cluster's.
        return sum(spent.values(), Usage())

    def series(self, *, since: datetime, now: datetime, bucket: timedelta) -> list[UsagePoint]:
        return series_points(
            usage_series(
                since=since,
                now=now,
                bucket=bucket,
                owner_ids=self.owner_ids,
                team_ids=self.team_ids,
            )
        )


def usage_scope(
    *, user: AbstractBaseUser, admin: bool, username: str = "", team: str = ""
) -> UsageScope:
    """The scope `user` asked for (`?user=`, `?team=`), or Http404 for one they may not see:
    their own usage, their teams', anyone's for admins. Default: their own; admins: the
    cluster."""
    if team:
        teams = Team.objects.filter(name=team)
        if not admin:
            teams = teams.filter(members=user.pk)
        found = teams.first()
        if found is None:
            raise Http404("No such team.")
        return UsageScope(label=f"team {found.name}", team_ids=(found.pk,))
    if username:
        other = User.objects.filter(username=username).first()
        if other is None or (other.pk != user.pk and not admin):
            raise Http404("No such user.")
        return UsageScope(label=other.username, owner_ids=(other.pk,))
    if admin:
        return UsageScope(label="the whole cluster")
    return UsageScope(label=user.get_username(), owner_ids=(user.pk,))


# The ranges the usage page offers, in days, with the width of one bar of its chart.
USAGE_RANGES: dict[int, timedelta] = {
    1: timedelta(minutes=30),
    7: timedelta(hours=3),
    30: timedelta(hours=12),
    90: timedelta(days=1),
}
