"""Control-plane tasks for searches (the `control` queue), sent by name and run by beat."""

from __future__ import annotations

from celery import shared_task

from portal.experiments.models import Search
from portal.experiments.services import SEARCH_ADVANCE_TASK, search_advance

SEARCHES_TICK_TASK = "portal.experiments.tasks.searches_tick"


@shared_task(name=SEARCH_ADVANCE_TASK, ignore_result=True)
def search_advance_task(search_id: int) -> None:
    """Advance one search: sent when one of its trials' jobs ends and when it is created."""
    search_advance(search_id=search_id)


@shared_task(name=SEARCHES_TICK_TASK, ignore_result=True)
def searches_tick() -> int:
    """Beat: advance every running search (new metric points for the pruner, trials to
    launch if a message was lost). A search another worker is advancing is skipped: that
    worker sees the same rows. Returns how many were advanced."""
    advanced = 0
    for search_id in Search.objects.filter(state=Search.State.RUNNING).values_list("pk", flat=True):
        if search_advance(search_id=search_id, skip_locked=True) is not None:
            advanced += 1
    return advanced
