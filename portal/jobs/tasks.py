"""Control-plane tasks for jobs (the `control` queue), sent by name and run by beat."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from portal.cluster.services import nodes_mark_offline
from portal.jobs.blocks import metric_blocks_roll
from portal.jobs.dry_run import MODEL_DRY_RUN_TASK, DryRunAnswer, dry_run_answer
from portal.jobs.reconciliation import attempts_lose_on_offline_nodes
from portal.jobs.scheduling import schedule_pass
from portal.lib.ticks import SCHEDULER_TICK_TASK, scheduler_tick_started

REAP_NODES_TASK = "portal.jobs.tasks.reap_nodes"


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
    node. Returns the number of nodes taken offline."""
    reaped = nodes_mark_offline()
    attempts_lose_on_offline_nodes()
    return len(reaped)


@shared_task(name=MODEL_DRY_RUN_TASK, ignore_result=False)
def model_dry_run(
    *, model: dict[str, Any], input_shape: list[int], task: str, num_classes: int
) -> DryRunAnswer:
    """The dry run of a job's model before it is queued (`portal.jobs.dry_run`); its caller
    waits for the answer (`portal.lib.calls`), hence `ignore_result=False`."""
    return dry_run_answer(model=model, input_shape=input_shape, task=task, num_classes=num_classes)


@shared_task(name="portal.jobs.tasks.roll_metric_blocks", ignore_result=True)
def roll_metric_blocks() -> int:
    """Roll the new points of running jobs up into chart blocks (`portal.jobs.blocks`)."""
    return metric_blocks_roll()
