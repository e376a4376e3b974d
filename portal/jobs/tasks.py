"""Control-plane tasks for jobs (the `control` queue)."""

from __future__ import annotations

from celery import shared_task

from portal.jobs.scheduling import SCHEDULER_TICK_TASK, schedule_pass


@shared_task(name=SCHEDULER_TICK_TASK, ignore_result=True)
def scheduler_tick() -> int:
    """One scheduling pass: sent on commit of every change that may let a job start, and by
    beat as a safety net for lost messages. Returns the number of jobs placed."""
    return schedule_pass()
