"""Preemption: a queued job that cannot start for lack of free room stops preemptible,
lower-priority running attempts to make it (docs/scheduling.md, *Preemption*).

The scheduler pass makes one `Preempter` and calls its `preempt_for` for a job whose
constraints some schedulable nodes meet but which finds too little free on them. It reads the
running attempts that hold room there, asks `portal.jobs.victims.choose_victims` which to
stop, and stops them: each victim attempt is marked (`Attempt.preempted_by`, `preempted_at`)
with a conditional update and its nodes get the stop message with the preemption grace
(`TRAINYARD_PREEMPT_GRACE_S`). The ranks checkpoint and exit; `attempt_exited` then ends the
attempt as PREEMPTED and requeues its job without using up a restart. The room is free once
the victims' placements exit, and the next pass places the waiting job. Meanwhile the waiting
job preempts nobody else, and the free room it could use is kept from the jobs after it in
the pass (lower priority, or a later submission), so what its victims free reaches it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from django.conf import settings
from django.db.models import Q

from portal.cluster.selectors import placements_holding_capacity
from portal.jobs import events
from portal.jobs.models import Attempt, Job, Placement
from portal.jobs.stopping import attempt_stop_unfinished, stop_request
from portal.jobs.victims import Holder, Waiting, choose_victims

logger = logging.getLogger(__name__)


class Room(Protocol):
    """A schedulable node's free room during a pass (`portal.jobs.scheduling._Room`)."""

    @property
    def node_id(self) -> int: ...

    def free_for(self, job: Job) -> int: ...

    def hold(self) -> None: ...


def _job_list(job_ids: Sequence[int]) -> str:
    return ", ".join(f"#{pk}" for pk in sorted(set(job_ids)))


@dataclass(frozen=True)
class _Share:
    """One unfinished placement that preemption may care about."""

    attempt_id: int
    job_id: int
    priority: int
    preemptible: bool
    started_at: datetime | None
    preempted_by: int | None
    node_id: int
    gpus: int
    slots: int


class Preempter:
    """One scheduler pass's preemption. It reads the running shares once, at its first
    `preempt_for` (so a pass costs one more query however long the queue), and keeps track of
    the attempts it preempts, which no later job of the pass can preempt again."""

    def __init__(self, *, now: datetime) -> None:
        self.now = now
        self._shares: list[_Share] | None = None
        # Derived from `_shares` (rebuilt when it changes): the shares each waiting job's
        # earlier preemption still stops, and the lowest priority an attempt that may still be
        # preempted has (None: there is none), so a long queue of jobs no attempt could make
        # room for costs one comparison each.
        self._stopping: dict[int, list[_Share]] | None = None
        self._lowest: int | None = None

    def _index(self) -> dict[int, list[_Share]]:
        if self._stopping is None:
            min_run_s = settings.TRAINYARD_PREEMPT_MIN_RUN_S
            self._stopping = defaultdict(list)
            self._lowest = None
            for share in self._read():
                if share.preempted_by is not None:
                    self._stopping[share.preempted_by].append(share)
                elif (
                    share.preemptible
                    and share.started_at is not None
                    and (self.now - share.started_at).total_seconds() >= min_run_s
                    and (self._lowest is None or share.priority < self._lowest)
                ):
                    self._lowest = share.priority
        return self._stopping

    def may_act_for(self, job_id: int, priority: int) -> bool:
        """Whether `preempt_for` could do anything for this job: its earlier victims still
        stop, or some attempt it may preempt (`victims.may_preempt`) runs somewhere. When
        False, `preempt_for` would return None, so the pass need not ask it."""
        stopping = self._index()
        if job_id in stopping:
            return True
        return self._lowest is not None and self._lowest < priority

    def _read(self) -> list[_Share]:
        if self._shares is None:
            rows = Placement.objects.filter(placements_holding_capacity()).filter(
                Q(attempt__preempted_by__isnull=False)
                | Q(
                    attempt__state=Attempt.State.RUNNING,
                    attempt__job__state=Job.State.RUNNING,
                    attempt__job__preemptible=True,
                )
            )
            self._shares = [
                _Share(*row)
                for row in rows.values_list(
                    "attempt_id",
                    "attempt__job_id",
                    "attempt__job__priority",
                    "attempt__job__preemptible",
                    "attempt__started_at",
                    "attempt__preempted_by_id",
                    "node_id",
                    "gpus",
                    "slots",
                )
            ]
        return self._shares

    def _holders(self, job: Job, node_ids: set[int]) -> list[Holder]:
        """The attempts not yet preempted that hold room of the job's kind on these nodes
        (`victims.may_preempt` decides which it may preempt)."""
        held: dict[int, dict[int, int]] = defaultdict(dict)
        facts: dict[int, _Share] = {}
        for share in self._read():
            amount = share.gpus if job.gpus_per_node else share.slots
            if share.preempted_by is None and share.node_id in node_ids and amount:
                held[share.attempt_id][share.node_id] = amount
                facts[share.attempt_id] = share
        return [
            Holder(
                attempt_id=attempt_id,
                job_id=share.job_id,
                priority=share.priority,
                preemptible=share.preemptible,
                started_at=share.started_at,
                held=held[attempt_id],
            )
            for attempt_id, share in facts.items()
        ]

    def preempt_for(self, job: Job, rooms: Sequence[Room]) -> str | None:
        """Preempt for `job` (queued, too little free room on `rooms`: the schedulable nodes
        that meet its constraints) if that lets it start; the line its reason should say, or
        None when it waits as usual."""
        stopping = self._index().get(job.pk, [])
        if stopping:
            # Its earlier victims still stop: preempt no more, and keep the room it could use
            # (what its victims freed already, what was free before) from the jobs after it.
            for room in rooms:
                room.hold()
            return (
                f"Waiting for job {_job_list([share.job_id for share in stopping])}, "
                "preempted for this job, to stop."
            )
        if not rooms:
            return None
        waiting = Waiting(
            priority=job.priority,
            nodes=job.nodes,
            need=job.slots_per_node,
            free={room.node_id: room.free_for(job) for room in rooms},
        )
        victims = choose_victims(
            waiting,
            self._holders(job, set(waiting.free)),
            now=self.now,
            min_run_s=settings.TRAINYARD_PREEMPT_MIN_RUN_S,
        )
        if not victims:
            return None
        stopped = [victim for victim in victims if _preempt(victim, job=job, now=self.now)]
        if not stopped:
            return None  # they ended meanwhile; the next pass sees the room
        ids = {victim.attempt_id for victim in stopped}
        self._shares = [
            replace(share, preempted_by=job.pk) if share.attempt_id in ids else share
            for share in self._read()
        ]
        self._stopping = None
        for room in rooms:
            room.hold()
        grace = settings.TRAINYARD_PREEMPT_GRACE_S
        one = len(stopped) == 1
        return (
            f"Preempting job {_job_list([v.job_id for v in stopped])} to make room: "
            f"{'it checkpoints and stops' if one else 'they checkpoint and stop'} "
            f"within {grace:g}s."
        )


def _preempt(victim: Holder, *, job: Job, now: datetime) -> bool:
    """Mark the victim's attempt preempted by `job` and tell its nodes to stop; False when it
    is no longer running (it ended, or another pass preempted it first)."""
    if not Attempt.objects.filter(
        pk=victim.attempt_id, state=Attempt.State.RUNNING, preempted_by__isnull=True
    ).update(preempted_by=job, preempted_at=now):
        return False
    attempt = Attempt.objects.get(pk=victim.attempt_id)
    attempt_stop_unfinished(attempt, stop=stop_request("preempt", detail=f"by job #{job.pk}"))
    grace = settings.TRAINYARD_PREEMPT_GRACE_S
    reason = (
        f"Being preempted by job #{job.pk} (priority {job.priority}): it checkpoints and "
        f"stops within {grace:g}s, then goes back to the queue."
    )
    if Job.objects.filter(pk=victim.job_id, state=Job.State.RUNNING).update(state_reason=reason):
        events.job_state_changed(Job.objects.get(pk=victim.job_id), attempt_id=attempt.pk)
    logger.info("job %s preempts attempt %s of job %s", job.pk, attempt.pk, victim.job_id)
    return True
