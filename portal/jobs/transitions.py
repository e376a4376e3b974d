"""Perform a job's move (decided by `portal.jobs.lifecycle`): check it against
`Job.TRANSITIONS`, make it with a conditional update on the state the caller read, and tell the
job's pages after the commit. The one place a job's state is written after it was created.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db.models import F
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
