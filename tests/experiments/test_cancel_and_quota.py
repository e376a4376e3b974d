"""Cancelling a search cancels every trial; cancelling one trial lets the search go on; a grid
search runs only as many trials at once as its owner's quota allows."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from portal.accounts.models import Quota
from portal.experiments.models import Search, Trial
from portal.experiments.services import search_advance, search_cancel, trial_cancel
from portal.jobs.models import Job
from portal.jobs.scheduling import schedule_pass
from tests.experiments.helpers import create, finish, jobs_in, start, trials
from tests.jobs.helpers import node

GRID = [
    {"name": "training.learning_rate", "kind": "choice", "choices": [0.01, 0.05, 0.1]},
    {"name": "hyperparameters.hidden_sizes", "kind": "choice", "choices": [[8], [16, 16]]},
]


def test_cancelling_a_search_cancels_every_trial(
    owner: Any, iris: Any, mlp: Any, django_capture_on_commit_callbacks: Any
) -> None:
    node(cpu_slots=2)
    search = create(owner, iris, mlp, method="grid", space=GRID, max_trials=6, parallelism=4)
    assert search.max_trials == 6
    search_advance(search_id=search.pk)
    schedule_pass()  # two of the four fit the node: two placed, two queued
    assert jobs_in(search, Job.State.SCHEDULED) == 2 and jobs_in(search, Job.State.QUEUED) == 2
    placed = [t for t in trials(search) if t.job and t.job.state == Job.State.SCHEDULED]
    start(placed[0].job)

    with django_capture_on_commit_callbacks(execute=True):
        search = search_cancel(user=owner, search=search)
    assert search.state == Search.State.CANCELLED and search.finished_at is not None
    assert {t.state for t in trials(search)} == {Trial.State.CANCELLED}
    # Queued trials end at once; placed ones are stopping on their node.
    assert jobs_in(search, Job.State.CANCELLED) == 2 and jobs_in(search, Job.State.CANCELLING) == 2
    for trial in placed:
        assert trial.job is not None
        finish(trial.job.attempts.get(), -15, cancelled=True)
    assert jobs_in(search, Job.State.CANCELLED) == 4
    # Nothing more is launched, and cancelling again changes nothing.
    search_advance(search_id=search.pk)
    assert len(trials(search)) == 4
    assert search_cancel(user=owner, search=search).state == Search.State.CANCELLED


def test_an_outsider_cannot_cancel_a_search(owner: Any, outsider: Any, iris: Any, mlp: Any) -> None:
    node(cpu_slots=2)
    search = create(owner, iris, mlp)
    with pytest.raises(PermissionDenied):
        search_cancel(user=outsider, search=search)


def test_cancelling_one_trial_launches_the_next(owner: Any, iris: Any, mlp: Any) -> None:
    node(cpu_slots=2)
    search = create(owner, iris, mlp, parallelism=2, max_trials=3)
    search_advance(search_id=search.pk)
    first = trials(search)[0]
    cancelled = trial_cancel(user=owner, trial=first)
    assert cancelled.state == Trial.State.CANCELLED
    assert cancelled.job is not None and cancelled.job.state == Job.State.CANCELLED
    search_advance(search_id=search.pk)
    assert [t.state for t in trials(search)] == [Trial.State.CANCELLED] + [Trial.State.RUNNING] * 2


def test_a_grid_search_over_the_quota_runs_only_as_many_trials_as_it_allows(
    owner: Any, iris: Any, mlp: Any, settings: Any
) -> None:
    # Every trial fails here, on one node: not the node's fault, so it must not be cordoned.
    settings.TRAINYARD_NODE_FAILURES_TO_CORDON = 0
    node(cpu_slots=8)
    Quota.objects.create(user=owner, max_running_jobs=2)
    search = create(owner, iris, mlp, method="grid", space=GRID, max_trials=100, parallelism=6)
    assert search.max_trials == 6  # the grid's size
    search_advance(search_id=search.pk)
    schedule_pass()
    running = {Job.State.SCHEDULED, Job.State.RUNNING}
    assert jobs_in(search, *running) == 2
    waiting = [t.job for t in trials(search) if t.job and t.job.state == Job.State.QUEUED]
    assert len(waiting) == 4 and all("quota" in job.state_reason.lower() for job in waiting)
    # As trials end, the next ones start, never more than two at once.
    for _ in range(3):
        for trial in trials(search):
            if trial.job and trial.job.state == Job.State.SCHEDULED:
                finish(start(trial.job), 1)
        search_advance(search_id=search.pk)
        schedule_pass()
        assert jobs_in(search, *running) <= 2
    search.refresh_from_db()
    assert search.state == Search.State.FAILED  # every trial failed, one pair at a time
    assert {t.state for t in trials(search)} == {Trial.State.FAILED}
