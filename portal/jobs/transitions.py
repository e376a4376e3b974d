"""Perform a job's move (decided by `portal.jobs.lifecycle`): check it against
`Job.TRANSITIONS`, make it with a conditional update on the state the caller read, and tell the
job's pages after the commit. The one place a job's state is written after it was created.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.jobs import events, signals
from portal.jobs.lifecycle import Move
from portal.jobs.models import Job

logger = logging.getLogger(__name__)


def job_move(
    job: Job,
    move: Move,
    *,
    attempt_id: int | events.LatestAttempt | None = events.LATEST,
    announce: bool = True,
    now: datetime | None = None,
) -> bool:
    """Move `job` from the state this instance holds to `move.to`; True if it moved.

    False when the transition is not allowed (logged as an error: a decision and the table
    disagree) or when the row is no longer in the state the caller read (someone else moved it
    first). On success the instance holds the new values. `announce=False` leaves the state
    event to a caller that sends many at once (the scheduler pass)."""
    if not Job.can_transition(job.state, move.to):
        logger.error("job %s cannot go from %s to %s", job.pk, job.state, move.to)
        return False
    now = now or timezone.now()
    fields: dict[str, Any] = {"state": move.to, "state_reason": move.reason}
    if move.to != Job.State.QUEUED:
        fields["why_pending"], fields["why_pending_digest"] = None, ""  # only queued jobs wait
    if move.finished:
        fields["finished_at"] = now
    if move.cancel_requested:
        fields["cancel_requested_at"] = now
    if move.started:
        fields["started_at"] = Coalesce(F("started_at"), now)
    if move.restart:
        fields["restarts"] = F("restarts") + 1
    if move.preempted:
        fields["preemptions"] = F("preemptions") + 1
    if not Job.objects.filter(pk=job.pk, state=job.state).update(**fields):
        return False
    counted = {"started_at", "restarts", "preemptions"}
    if counted & fields.keys():
        job.refresh_from_db(fields=["state", "state_reason", *counted])
    for name, value in fields.items():
        if name not in counted:
            setattr(job, name, value)
    if announce:
        events.job_state_changed(job, attempt_id=attempt_id)
    if move.to in Job.TERMINAL:
        signals.job_finished_on_commit(job)
    return True


def jobs_move(moves: Sequence[tuple[Job, Move]], *, announce: bool = True) -> list[Job]:
    """Make many moves to one state at once (the scheduler's placements): lock the rows still
    in the state each instance holds, and move them in one update. Returns the jobs that moved,
    in the order given. Only moves that set nothing but the state and its reason batch."""
    if not moves:
        return []
    source, target = moves[0][0].state, moves[0][1].to
    for job, move in moves:
        if (job.state, move.to) != (source, target):
            raise ValueError(f"job {job.pk}: only moves from one state to one state batch")
        if move.finished or move.started or move.restart or move.cancel_requested:
            raise ValueError(f"job {job.pk}: only moves that set the state and reason batch")
    if not Job.can_transition(source, target):
        raise ValueError(f"no job can go from {source} to {target}")
    # The row locks order this against a cancel's, which locks the row the same way.
    still = set(
        Job.objects.select_for_update()
        .filter(pk__in=[job.pk for job, _ in moves], state=source)
        .values_list("pk", flat=True)
    )
    moved = [(job, move) for job, move in moves if job.pk in still]
    if not moved:
        return []
    fields: dict[str, Any] = {
        "state": target,
        "state_reason": Case(*(When(pk=job.pk, then=Value(move.reason)) for job, move in moved)),
    }
    if target != Job.State.QUEUED:
        fields["why_pending"], fields["why_pending_digest"] = None, ""
    Job.objects.filter(pk__in=still).update(**fields)
    for job, move in moved:
        job.state, job.state_reason = move.to, move.reason
        job.why_pending = None if target != Job.State.QUEUED else job.why_pending
        if announce:
            events.job_state_changed(job, attempt_id=events.LATEST)
    return [job for job, _ in moved]
