"""Quotas at admission: whether a job's owner and team may take its share of the cluster now.

The scheduler pass asks an `Admission` for each job it could place (`blocked`) and tells it of
each job it placed (`charge`), so one pass never admits past a limit; the pass runs under the
scheduler's advisory lock and the quota rows are locked for it (docs/quotas.md).
`Unlimited` admits everything (no quotas configured, and the pure tests of the ordering);
`QuotaLedger` is the real one. At submit, `submit_team`, `priority_errors` and
`queued_jobs_check` decide the team, the priority and the queued-jobs limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypedDict

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, Sum
from django.utils import timezone

from portal.accounts.limits import Limits
from portal.accounts.models import Quota, Team
from portal.cluster.selectors import placements_holding_capacity
from portal.jobs import usage
from portal.jobs.models import Job, Placement

QuotaLimit = Literal["gpus", "cpu_slots", "running_jobs", "gpu_hours", "cpu_slot_hours"]

_UNITS: dict[str, str] = {
    "gpus": "GPUs",
    "cpu_slots": "CPU slots",
    "running_jobs": "running jobs",
    "gpu_hours": "GPU-hours",
    "cpu_slot_hours": "CPU-slot-hours",
}
# Limits on what was used over the rolling window, not on what a job would hold: a job may
# start while the holder's usage is below the limit (it asks for nothing up front).
CUMULATIVE: frozenset[str] = frozenset({"gpu_hours", "cpu_slot_hours"})


def window() -> timedelta:
    """The rolling window of the hours limits (`TRAINYARD_QUOTA_WINDOW_DAYS`)."""
    return timedelta(days=settings.TRAINYARD_QUOTA_WINDOW_DAYS)


def _days(delta: timedelta) -> str:
    days = delta / timedelta(days=1)
    return f"{days:g} days" if days != 1 else "1 day"


@dataclass(frozen=True)
class QuotaVerdict:
    """One limit as it applies to one job: who holds it, how much is allowed, in use, asked."""

    scope: Literal["user", "team"]
    holder: str  # the username or team name
    limit: QuotaLimit
    allowed: float
    used: float
    asked: float

    @property
    def headroom(self) -> float:
        return max(0.0, self.allowed - self.used)

    @property
    def binds(self) -> bool:
        if self.limit in CUMULATIVE:
            return self.used >= self.allowed
        return self.used + self.asked > self.allowed

    def message(self) -> str:
        """`team vision's quota: 6 of 8 GPUs in use, this job asks for 4`, or for the hours
        limits `alice's quota: 101.5 of 100 GPU-hours used in the last 30 days`."""
        unit = _UNITS[self.limit]
        who = f"team {self.holder}'s" if self.scope == "team" else f"{self.holder}'s"
        if self.limit in CUMULATIVE:
            return (
                f"{who} quota: {round(self.used, 2):g} of {self.allowed:g} {unit} used "
                f"in the last {_days(window())}"
            )
        return (
            f"{who} quota: {self.used:g} of {self.allowed:g} {unit} in use, "
            f"this job asks for {self.asked:g}"
        )


class Admission(Protocol):
    def blocked(self, job: Job) -> QuotaVerdict | None:
        """The first limit that `job` would break if it started now, or None."""

    def limits(self, job: Job) -> list[QuotaVerdict]:
        """Every limit that applies to `job`, binding or not (the why-pending headroom)."""

    def charge(self, job: Job) -> None:
        """Count `job` as running from now on (the pass just placed it)."""


class Charged(Protocol):
    """What the ledger needs to know of a queued job to load its holders: a `Job`, or the
    scheduler's lighter row."""

    @property
    def owner_id(self) -> int: ...

    @property
    def team_id(self) -> int | None: ...


class Unlimited:
    """No quotas: every job is admitted."""

    def blocked(self, job: Job) -> QuotaVerdict | None:
        return None

    def limits(self, job: Job) -> list[QuotaVerdict]:
        return []

    def charge(self, job: Job) -> None:
        return None


# ---- the ledger the scheduler pass asks ------------------------------------------------------


@dataclass
class HolderUsage:
    """One user's or team's limits and what they hold now (and used in the window)."""

    scope: Literal["user", "team"]
    name: str
    limits: Limits
    gpus: int = 0
    cpu_slots: int = 0
    running_jobs: int = 0
    gpu_us: int = 0
    slot_us: int = 0

    def verdicts(self, job: Job) -> list[QuotaVerdict]:
        """Every limit of this holder that applies to `job` (GPU limits to GPU jobs, CPU-slot
        limits to CPU jobs, the running-jobs limit to all)."""
        lim, out = self.limits, []
        if job.gpus_per_node:
            if lim.max_gpus is not None:
                out.append(self._verdict("gpus", lim.max_gpus, self.gpus, _gpus(job)))
            if lim.max_gpu_hours is not None:
                hours = self.gpu_us / usage.MICROS_PER_HOUR
                out.append(self._verdict("gpu_hours", lim.max_gpu_hours, hours, 0))
        else:
            if lim.max_cpu_slots is not None:
                out.append(
                    self._verdict("cpu_slots", lim.max_cpu_slots, self.cpu_slots, _slots(job))
                )
            if lim.max_cpu_slot_hours is not None:
                hours = self.slot_us / usage.MICROS_PER_HOUR
                out.append(self._verdict("cpu_slot_hours", lim.max_cpu_slot_hours, hours, 0))
        if lim.max_running_jobs is not None:
            out.append(self._verdict("running_jobs", lim.max_running_jobs, self.running_jobs, 1))
        return out

    def _verdict(
        self, limit: QuotaLimit, allowed: float, used: float, asked: float
    ) -> QuotaVerdict:
        return QuotaVerdict(
            scope=self.scope,
            holder=self.name,
            limit=limit,
            allowed=float(allowed),
            used=float(used),
            asked=float(asked),
        )

    def charge(self, job: Job) -> None:
        self.gpus += _gpus(job)
        self.cpu_slots += _slots(job)
        self.running_jobs += 1


def _gpus(job: Job) -> int:
    return job.nodes * job.gpus_per_node


def _slots(job: Job) -> int:
    # A GPU job's placements hold GPUs only (their `slots` are 0): CPU slots are the pool of
    # CPU jobs (docs/scheduling.md).
    return 0 if job.gpus_per_node else job.nodes * job.procs_per_node


@dataclass
class QuotaLedger:
    """The `Admission` of one scheduler pass: the limits of the queued jobs' owners and teams,
    what they hold now and what they used in the window, updated as the pass places jobs.

    `load` reads it in a handful of aggregate queries, whatever the number of jobs, with the
    quota rows locked (`SELECT ... FOR UPDATE`) until the pass commits, so an admin's change
    waits for the pass that reads the old value. Holders with no limit are not tracked."""

    users: dict[int, HolderUsage] = field(default_factory=dict)
    teams: dict[int, HolderUsage] = field(default_factory=dict)

    @classmethod
    def load(
        cls, jobs: Sequence[Charged], *, now: datetime | None = None, lock: bool = True
    ) -> QuotaLedger:
        """The ledger for the owners and teams of `jobs`; `lock=False` for a plan preview,
        which decides nothing."""
        now = now or timezone.now()
        owner_ids = {job.owner_id for job in jobs}
        team_ids = {job.team_id for job in jobs if job.team_id is not None}
        quotas = Quota.objects.select_for_update(of=("self",)) if lock else Quota.objects.all()
        rows = list(quotas.filter(Q(user__in=owner_ids) | Q(team__in=team_ids)).order_by("pk"))
        by_user = {row.user_id: row for row in rows if row.user_id is not None}
        by_team = {row.team_id: row for row in rows if row.team_id is not None}
        user_limits = _limited({pk: Limits.of(by_user.get(pk)) for pk in owner_ids})
        team_limits = _limited({pk: Limits.of(by_team.get(pk)) for pk in team_ids})
        ledger = cls()
        if not user_limits and not team_limits:
            return ledger
        names = dict(User.objects.filter(pk__in=user_limits).values_list("pk", "username"))
        team_names = dict(Team.objects.filter(pk__in=team_limits).values_list("pk", "name"))
        ledger.users = {
            pk: HolderUsage("user", names.get(pk, str(pk)), limits)
            for pk, limits in user_limits.items()
        }
        ledger.teams = {
            pk: HolderUsage("team", team_names.get(pk, str(pk)), limits)
            for pk, limits in team_limits.items()
        }
        if ledger.users:
            _load_usage("owner", ledger.users, now=now)
        if ledger.teams:
            _load_usage("team", ledger.teams, now=now)
        return ledger

    def _holders(self, job: Job) -> Iterable[HolderUsage]:
        if (user := self.users.get(job.owner_id)) is not None:
            yield user
        if job.team_id is not None and (team := self.teams.get(job.team_id)) is not None:
            yield team

    def blocked(self, job: Job) -> QuotaVerdict | None:
        for holder in self._holders(job):
            for verdict in holder.verdicts(job):
                if verdict.binds:
                    return verdict
        return None

    def limits(self, job: Job) -> list[QuotaVerdict]:
        return [verdict for holder in self._holders(job) for verdict in holder.verdicts(job)]

    def charge(self, job: Job) -> None:
        for holder in self._holders(job):
            holder.charge(job)


def _limited(limits: dict[int, Limits]) -> dict[int, Limits]:
    return {pk: lim for pk, lim in limits.items() if not lim.is_unlimited}


def _load_usage(holder: usage.Holder, tracked: dict[int, HolderUsage], *, now: datetime) -> None:
    """What `tracked` holders hold now (placements holding capacity) and, where an hours
    limit applies, used in the window: two aggregate queries."""
    key = f"attempt__job__{holder}_id"
    held = (
        Placement.objects.filter(placements_holding_capacity(), **{f"{key}__in": list(tracked)})
        .values(key)
        .annotate(gpus=Sum("gpus"), slots=Sum("slots"), jobs=Count("attempt__job", distinct=True))
        .order_by()
    )
    for row in held:
        entry = tracked[row[key]]
        entry.gpus, entry.cpu_slots, entry.running_jobs = row["gpus"], row["slots"], row["jobs"]
    hourly = [
        pk
        for pk, entry in tracked.items()
        if entry.limits.max_gpu_hours is not None or entry.limits.max_cpu_slot_hours is not None
    ]
    if hourly:
        used = usage.usage_by(holder, since=now - window(), now=now, ids=hourly)
        for pk, spent in used.items():
            tracked[pk].gpu_us, tracked[pk].slot_us = spent.gpu_us, spent.slot_us


# ---- at submit -------------------------------------------------------------------------------


def submit_team(*, user: AbstractBaseUser, name: str | None) -> Team | None:
    """The team a new job is charged to: the one named (one of the user's teams, else a
    ValidationError keyed `team`), or the user's first team by name, or None."""
    teams = Team.objects.filter(members=user.pk).order_by("name")
    if not name:
        return teams.first()
    team = teams.filter(name=name).first()
    if team is None:
        mine = ", ".join(teams.values_list("name", flat=True)) or "none"
        raise ValidationError(
            {"team": [f"You are not a member of a team named {name}; your teams: {mine}."]}
        )
    return team


def _quota_row(**owner: object) -> Quota | None:
    return Quota.objects.filter(**owner).first()


def priority_errors(
    *, user: AbstractBaseUser, team: Team | None, priority: int
) -> dict[str, list[str]]:
    """A refusal keyed `priority` when `priority` is outside what both the user's and the
    team's quotas allow, naming the allowed range."""
    ranges = [("your quota", Limits.of(_quota_row(user=user.pk)).priorities)]
    if team is not None:
        ranges.append((f"team {team.name}'s quota", Limits.of(_quota_row(team=team.pk)).priorities))
    low = max(lo for _, (lo, _hi) in ranges)
    high = min(hi for _, (_lo, hi) in ranges)
    if low <= priority <= high:
        return {}
    if low > high:
        parts = "; ".join(f"{who} allows {lo} to {hi}" for who, (lo, hi) in ranges)
        return {"priority": [f"No priority is allowed: {parts}. Ask an admin."]}
    return {"priority": [f"Priority {priority} is outside the allowed range: {low} to {high}."]}


def queued_jobs_check(*, user: AbstractBaseUser, team: Team | None) -> None:
    """Refuse (ValidationError keyed `__all__`, naming the limit) a submit that would queue
    more jobs than the user's or the team's queued-jobs limit allows.

    Call it in the transaction that creates the job: it locks the user's row (and the team's)
    so two submits of the same user or team count one after the other, never both below the
    limit at once. The lock order is always user, then team, so two teammates never deadlock.
    """
    mine = Limits.of(_quota_row(user=user.pk)).max_queued_jobs
    theirs = Limits.of(_quota_row(team=team.pk)).max_queued_jobs if team is not None else None
    if mine is None and theirs is None:
        return
    User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).get()
    checks: list[tuple[str, int, Q]] = []
    if mine is not None:
        checks.append(("your", mine, Q(owner=user.pk)))
    if team is not None and theirs is not None:
        Team.objects.select_for_update().filter(pk=team.pk).values_list("pk", flat=True).get()
        checks.append((f"team {team.name}'s", theirs, Q(team=team.pk)))
    for who, allowed, scope in checks:
        queued = Job.objects.filter(scope, state=Job.State.QUEUED).count()
        if queued >= allowed:
            raise ValidationError(
                {
                    "__all__": [
                        f"{who[0].upper()}{who[1:]} quota allows {allowed} queued jobs and "
                        f"{queued} are queued: wait for one to start, or cancel one."
                    ]
                }
            )


# ---- the admins' overview --------------------------------------------------------------------


class LimitUse(TypedDict):
    limit: str  # a Quota field: "max_gpus", ...
    allowed: float | None  # None: unlimited
    used: float


class HolderRow(TypedDict):
    scope: Literal["user", "team"]
    id: int
    name: str
    limits: list[LimitUse]
    priorities: tuple[int, int]


class QuotaOverview(TypedDict):
    at: float
    window_days: float
    users: list[HolderRow]
    teams: list[HolderRow]


def quotas_overview(*, now: datetime | None = None) -> QuotaOverview:
    """Every active user and every team with each limit and what they use against it now:
    GPUs, CPU slots and running jobs held, jobs queued, hours in the window. A fixed number of
    aggregate queries, whatever the number of users, teams and jobs (the admins' quotas page
    refreshes it every few seconds)."""
    now = now or timezone.now()
    rows = list(Quota.objects.all())
    by_user = {row.user_id: row for row in rows if row.user_id is not None}
    by_team = {row.team_id: row for row in rows if row.team_id is not None}
    users = {
        pk: HolderUsage("user", name, Limits.of(by_user.get(pk)))
        for pk, name in User.objects.filter(is_active=True)
        .order_by("username")
        .values_list("pk", "username")
    }
    teams = {
        pk: HolderUsage("team", name, Limits.of(by_team.get(pk)))
        for pk, name in Team.objects.order_by("name").values_list("pk", "name")
    }
    since = now - window()
    out: dict[str, list[HolderRow]] = {}
    holders: tuple[tuple[usage.Holder, dict[int, HolderUsage]], ...] = (
        ("owner", users),
        ("team", teams),
    )
    for holder, tracked in holders:
        key = f"{holder}_id"
        queued = dict(
            Job.objects.filter(state=Job.State.QUEUED, **{f"{key}__isnull": False})
            .values(key)
            .annotate(n=Count("id"))
            .order_by()
            .values_list(key, "n")
        )
        if tracked:
            _load_usage_all(holder, tracked, now=now, since=since)
        out[holder] = [_overview_row(pk, entry, queued.get(pk, 0)) for pk, entry in tracked.items()]
    return {
        "at": now.timestamp(),
        "window_days": settings.TRAINYARD_QUOTA_WINDOW_DAYS,
        "users": out["owner"],
        "teams": out["team"],
    }


def _load_usage_all(
    holder: usage.Holder, tracked: dict[int, HolderUsage], *, now: datetime, since: datetime
) -> None:
    key = f"attempt__job__{holder}_id"
    held = (
        Placement.objects.filter(placements_holding_capacity(), **{f"{key}__isnull": False})
        .values(key)
        .annotate(gpus=Sum("gpus"), slots=Sum("slots"), jobs=Count("attempt__job", distinct=True))
        .order_by()
    )
    for row in held:
        if (entry := tracked.get(row[key])) is not None:
            entry.gpus, entry.cpu_slots, entry.running_jobs = row["gpus"], row["slots"], row["jobs"]
    for pk, spent in usage.usage_by(holder, since=since, now=now).items():
        if (entry := tracked.get(pk)) is not None:
            entry.gpu_us, entry.slot_us = spent.gpu_us, spent.slot_us


def _overview_row(pk: int, entry: HolderUsage, queued: int) -> HolderRow:
    lim = entry.limits
    used: list[tuple[str, float | None, float]] = [
        ("max_gpus", lim.max_gpus, entry.gpus),
        ("max_cpu_slots", lim.max_cpu_slots, entry.cpu_slots),
        ("max_running_jobs", lim.max_running_jobs, entry.running_jobs),
        ("max_queued_jobs", lim.max_queued_jobs, queued),
        ("max_gpu_hours", lim.max_gpu_hours, round(entry.gpu_us / usage.MICROS_PER_HOUR, 3)),
        (
            "max_cpu_slot_hours",
            lim.max_cpu_slot_hours,
            round(entry.slot_us / usage.MICROS_PER_HOUR, 3),
        ),
    ]
    return {
        "scope": entry.scope,
        "id": pk,
        "name": entry.name,
        "limits": [
            {"limit": name, "allowed": allowed, "used": value} for name, allowed, value in used
        ],
        "priorities": lim.priorities,
    }
