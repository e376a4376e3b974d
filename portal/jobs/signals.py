"""What the jobs app tells the apps above it, which it cannot import (docs/design.md).

Both signals are sent after the commit that made the change, once per change, from
synchronous code; a receiver that raises is logged and does not undo the change
(`send_robust`). Receivers live in the apps above: notifications, experiments.
"""

from __future__ import annotations

import logging
from typing import Literal

from django.db import transaction
from django.dispatch import Signal

from portal.jobs.models import Job

logger = logging.getLogger(__name__)

# sender=Job, job=<Job>: the job reached a terminal state (succeeded, failed, cancelled);
# `job.state` and `job.state_reason` say which and why.
job_finished = Signal()

# sender=Job, job=<Job>, flag=<JobFlag>, detail=<str>: something a watcher should hear about
# that is not an end: the job stalled, sat idle on its GPUs, or was preempted (and requeued).
job_flagged = Signal()

JobFlag = Literal["stalled", "idle", "preempted"]


def _send(signal: Signal, **kwargs: object) -> None:
    for receiver, result in signal.send_robust(sender=Job, **kwargs):
        if isinstance(result, Exception):
            logger.error("receiver %r of a job signal failed", receiver, exc_info=result)


def job_finished_on_commit(job: Job) -> None:
    """Send `job_finished` for `job` once the current transaction commits."""
    transaction.on_commit(lambda: _send(job_finished, job=job))


def job_flagged_on_commit(job: Job, *, flag: JobFlag, detail: str) -> None:
    """Send `job_flagged` for `job` once the current transaction commits."""
    transaction.on_commit(lambda: _send(job_flagged, job=job, flag=flag, detail=detail))
