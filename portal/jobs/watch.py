"""Stalled and idle jobs: the decisions (pure, tested as tables) and the beat task's pass.

- **Stalled**: a running job whose ranks have reported no training step for longer than
  `max(TRAINYARD_STALL_FACTOR x its median step time, TRAINYARD_STALL_MIN_S)`. The median is
  taken over its latest 20 steps, so a job that slows down gradually is not a stall, and one
  that takes minutes per step is not flagged for a minute's pause. Cleared when steps resume.
- **Idle**: a running GPU job whose GPUs all read below the pool's utilisation threshold on
  every sample (one per watch tick, from the nodes' latest heartbeats) for the pool's window
  and at least its minimum number of samples. A reading above the threshold ends the streak
  and clears the flag. The policy may also stop such a job.

Each flag is a conditional update from None, so `job_flagged` is sent once per stall or idle
spell however often the pass runs. The pass reads with a fixed number of queries whatever the
number of jobs: one for the running jobs with their latest 21 steps (an `ArraySubquery` that
walks the `(job, attempt, seq)` index backwards), one for their GPU placements and nodes.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.db import transaction
from django.db.models import OuterRef, Q
from django.utils import timezone

from portal.jobs import events
from portal.jobs.models import Attempt, Job, MetricPoint, Placement
from portal.jobs.services import job_stop
from portal.jobs.signals import JobFlag, job_flagged_on_commit

logger = logging.getLogger(__name__)

# Steps whose spacing gives the median step time.
RECENT_STEPS = 21
IDLE_STOPPER = "the idle-GPU policy"


# ---- decisions -------------------------------------------------------------------------------


def median_step_s(steps: Sequence[tuple[int, datetime]]) -> float | None:
    """The median seconds per step over `(step, reported_at)` pairs (any order), or None."""
    ordered = sorted(steps)
    spans = [
        (later_at - at).total_seconds() / (later - step)
        for (step, at), (later, later_at) in pairwise(ordered)
        if later > step
    ]
    return statistics.median(spans) if spans else None


def stall_limit_s(median_s: float | None, *, factor: float, minimum_s: float) -> float:
    return max(factor * median_s, minimum_s) if median_s is not None else minimum_s


def is_stalled(
    *,
    now: datetime,
    last_step_at: datetime | None,
    median_s: float | None,
    factor: float,
    minimum_s: float,
) -> bool:
    """Whether a running job's ranks have been silent for too long. A job that has not made
    its first step is not judged here: it is still starting (its phases say where)."""
    if last_step_at is None:
        return False
    silent = (now - last_step_at).total_seconds()
    return silent > stall_limit_s(median_s, factor=factor, minimum_s=minimum_s)


@dataclass(frozen=True)
class IdlePolicy:
    """A pool's idle rule (`TRAINYARD_IDLE_POLICY`, `TRAINYARD_IDLE_POOLS`)."""

    percent: float
    window_s: float
    min_samples: int
    stop: bool

    @classmethod
    def for_pool(cls, pool: str) -> IdlePolicy:
        policy: dict[str, Any] = settings.TRAINYARD_IDLE_POOLS.get(
            pool, settings.TRAINYARD_IDLE_POLICY
        )
        return cls(
            percent=float(policy["percent"]),
            window_s=float(policy["window_s"]),
            min_samples=int(policy["min_samples"]),
            stop=bool(policy["stop"]),
        )


@dataclass(frozen=True)
class IdleVerdict:
    """The job's streak after one sample, and what to do about it."""

    since: datetime | None
    samples: int
    idle: bool  # idle by the policy now
    stop: bool


def idle_verdict(
    *,
    readings: Sequence[float | None],
    since: datetime | None,
    samples: int,
    policy: IdlePolicy,
    now: datetime,
) -> IdleVerdict | None:
    """One sample of a job's GPU utilisation (every GPU of every node it runs on).

    None: no sample (no fresh heartbeat, or a GPU whose sensor reads nothing), the streak
    stands as it is. A busy GPU ends the streak; otherwise it grows, and the job is idle once
    the streak is both `window_s` long and `min_samples` long."""
    if not readings or any(value is None for value in readings):
        return None
    if max(value for value in readings if value is not None) >= policy.percent:
        return IdleVerdict(since=None, samples=0, idle=False, stop=False)
    since = since or now
    samples += 1
    idle = samples >= policy.min_samples and (now - since).total_seconds() >= policy.window_s
    return IdleVerdict(since=since, samples=samples, idle=idle, stop=idle and policy.stop)


# ---- the pass --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchResult:
    stalled: list[int]
    idle: list[int]
    cleared: list[int]
    stopped: list[int]


def jobs_watch(*, now: datetime | None = None) -> WatchResult:
    """Flag and clear stalled and idle jobs (the beat task `watch_jobs`)."""
    now = now or timezone.now()
    result = WatchResult(stalled=[], idle=[], cleared=[], stopped=[])
    # A job that stopped running keeps no flag and no streak.
    Job.objects.exclude(state=Job.State.RUNNING).filter(
        Q(stalled_at__isnull=False) | Q(idle_at__isnull=False) | Q(idle_samples__gt=0)
    ).update(stalled_at=None, idle_at=None, idle_since=None, idle_samples=0)
    _watch_stalls(now, result)
    _watch_idle(now, result)
    return result


def _watch_stalls(now: datetime, result: WatchResult) -> None:
    steps = MetricPoint.objects.filter(
        job=OuterRef("pk"), split=MetricPoint.Split.TRAIN, attempt__state__in=Attempt.ACTIVE
    ).order_by("-attempt_id", "-seq")[:RECENT_STEPS]
    jobs = Job.objects.filter(state=Job.State.RUNNING).annotate(
        recent_steps=ArraySubquery(steps.values("step")),
        recent_at=ArraySubquery(steps.values("reported_at")),
    )
    factor, minimum = settings.TRAINYARD_STALL_FACTOR, settings.TRAINYARD_STALL_MIN_S
    fields = ("id", "name", "state", "state_reason", "stalled_at", "owner_id", "team_id")
    for job in jobs.only(*fields):
        recent = list(zip(job.recent_steps, job.recent_at, strict=True))
        last_at = max((at for _step, at in recent), default=None)
        median = median_step_s(recent)
        stalled = is_stalled(
            now=now, last_step_at=last_at, median_s=median, factor=factor, minimum_s=minimum
        )
        if stalled and job.stalled_at is None:
            assert last_at is not None
            limit = stall_limit_s(median, factor=factor, minimum_s=minimum)
            detail = (
                f"No training step for {(now - last_at).total_seconds():.0f} s "
                f"(limit {limit:.0f} s; median step {median or 0:.3f} s)."
            )
            if _flag(job, "stalled_at", now, detail):
                result.stalled.append(job.pk)
        elif not stalled and job.stalled_at is not None and _clear(job, "stalled_at"):
            logger.info("job %s: steps resumed; no longer stalled", job.pk)
            result.cleared.append(job.pk)


def _flag(job: Job, field: str, now: datetime, detail: str) -> bool:
    """Set the flag `field` from None, and tell watchers once."""
    with transaction.atomic():
        updated = Job.objects.filter(
            pk=job.pk, state=Job.State.RUNNING, **{f"{field}__isnull": True}
        ).update(**{field: now})
        if not updated:
            return False
        flag: JobFlag = "stalled" if field == "stalled_at" else "idle"
        logger.warning("job %s is %s: %s", job.pk, flag, detail)
        setattr(job, field, now)
        job_flagged_on_commit(job, flag=flag, detail=detail)
        events.job_state_changed(job)
    return True


def _clear(job: Job, field: str) -> bool:
    """Clear the flag `field`; the job's page hears of it like a state change."""
    if not Job.objects.filter(pk=job.pk, **{f"{field}__isnull": False}).update(**{field: None}):
        return False
    setattr(job, field, None)
    events.job_state_changed(job)
    return True


def _heartbeat_fresh_after(now: datetime) -> datetime:
    # A heartbeat older than the reaper's window says nothing about now.
    window = settings.TRAINYARD_MISSED_HEARTBEATS * settings.TRAINYARD_HEARTBEAT_S
    return now - timedelta(seconds=window)


def _watch_idle(now: datetime, result: WatchResult) -> None:
    placements = (
        Placement.objects.filter(
            attempt__job__state=Job.State.RUNNING,
            attempt__state__in=Attempt.ACTIVE,
            finished_at__isnull=True,
            gpus__gt=0,
        )
        .select_related("node", "attempt__job")
        .order_by("attempt__job_id", "node_rank")
    )
    by_job: dict[int, list[Placement]] = defaultdict(list)
    for placement in placements:
        by_job[placement.attempt.job_id].append(placement)
    fresh_after = _heartbeat_fresh_after(now)
    for shares in by_job.values():
        job = shares[0].attempt.job
        readings: list[float | None] = []
        for share in shares:
            node = share.node
            if node.last_heartbeat_at is None or node.last_heartbeat_at < fresh_after:
                readings = []
                break
            by_index = {gpu.get("index"): gpu for gpu in node.health.get("gpus", [])}
            readings += [by_index.get(i, {}).get("utilization") for i in share.gpu_indices]
        policy = IdlePolicy.for_pool(shares[0].node.pool)
        verdict = idle_verdict(
            readings=readings,
            since=job.idle_since,
            samples=job.idle_samples,
            policy=policy,
            now=now,
        )
        if verdict is None:
            continue
        _idle_apply(job, verdict, policy, now, result)


def _idle_apply(
    job: Job, verdict: IdleVerdict, policy: IdlePolicy, now: datetime, result: WatchResult
) -> None:
    Job.objects.filter(pk=job.pk, state=Job.State.RUNNING).update(
        idle_since=verdict.since, idle_samples=verdict.samples
    )
    if verdict.idle and job.idle_at is None:
        assert verdict.since is not None
        minutes = (now - verdict.since).total_seconds() / 60
        detail = (
            f"Its GPUs stayed below {policy.percent:g}% utilisation for {minutes:.1f} min "
            f"({verdict.samples} samples)."
        )
        if verdict.stop:
            detail += " Stopping it, as the pool's idle policy says."
        if _flag(job, "idle_at", now, detail):
            result.idle.append(job.pk)
    elif verdict.samples == 0 and job.idle_at is not None and _clear(job, "idle_at"):
        result.cleared.append(job.pk)
    if verdict.stop and job_stop(job_id=job.pk, who=IDLE_STOPPER):
        result.stopped.append(job.pk)
