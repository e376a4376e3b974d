"""Control-plane tasks for jobs (the `control` queue), sent by name and run by beat."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_process_init

from portal.cluster.services import nodes_mark_offline
from portal.jobs.blocks import metric_blocks_roll
from portal.jobs.dry_run import MODEL_DRY_RUN_TASK, DryRunAnswer, dry_run_answer
from portal.jobs.reconciliation import attempts_lose_on_offline_nodes
from portal.jobs.retention import log_lines_expire
from portal.jobs.run_time import attempts_stop_past_run_time
from portal.jobs.scheduling import schedule_pass
from portal.jobs.watch import jobs_watch
from portal.lib.ticks import SCHEDULER_TICK_TASK, scheduler_tick_started

REAP_NODES_TASK = "portal.jobs.tasks.reap_nodes"
WATCH_JOBS_TASK = "portal.jobs.tasks.watch_jobs"


@shared_task(name=SCHEDULER_TICK_TASK, ignore_result=True)
def scheduler_tick() -> int:
    """One scheduling pass: sent after commits that may let a job start (`request_schedule`),
    and by beat as a safety net for lost messages. Returns the number of jobs placed."""
    scheduler_tick_started()
    return schedule_pass()


@shared_task(name=REAP_NODES_TASK, ignore_result=True)
def reap_nodes() -> int:
    """Take nodes that stopped sending heartbeats offline (none while ingest has heartbeats
    still to store: see `nodes_mark_offline`), then lose every active attempt on an offline
    node, and stop every attempt past its maximum run time (`portal.jobs.run_time`). Returns the
    number of nodes taken offline."""
    reaped = nodes_mark_offline()
    attempts_lose_on_offline_nodes()
    # Stopped here rather than by a task of its own: the same short tick, and the reaper is
    # already where attempts end for reasons no node reports.
    attempts_stop_past_run_time()
    return len(reaped)


@shared_task(name=MODEL_DRY_RUN_TASK, ignore_result=False)
def model_dry_run(
    *, model: dict[str, Any], input_shape: list[int], task: str, num_classes: int
) -> DryRunAnswer:
    """The dry run of a job's model before it is queued (`portal.jobs.dry_run`); its caller
    waits for the answer (`portal.lib.calls`), hence `ignore_result=False`."""
    return dry_run_answer(model=model, input_shape=input_shape, task=task, num_classes=num_classes)


@shared_task(name="portal.jobs.tasks.expire_logs", ignore_result=True)
def expire_logs() -> int:
    """Log retention, hourly by beat: see `portal.jobs.retention`."""
    return log_lines_expire()


@shared_task(name=WATCH_JOBS_TASK, ignore_result=True)
def watch_jobs() -> int:
    """Flag (and clear) stalled and idle jobs (`portal.jobs.watch`). Returns the new flags."""
    result = jobs_watch()
    return len(result.stalled) + len(result.idle)


@worker_process_init.connect
def _warm_the_dry_run(**kwargs: Any) -> None:
    """Import torch and the model builders in each worker process as it starts, not in the
    first job's dry run: a submit waits for that answer, and the first one after a restart
    would otherwise pay seconds of imports (docs/telemetry.md, "Phases")."""
    import workers.models  # noqa: F401


@shared_task(name="portal.jobs.tasks.roll_metric_blocks", ignore_result=True)
def roll_metric_blocks() -> int:
    """Roll the new points of running jobs up into chart blocks (`portal.jobs.blocks`)."""
    return metric_blocks_roll()
