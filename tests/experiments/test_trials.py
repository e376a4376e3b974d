"""A search's trials are jobs: at most `parallelism` unfinished, more launched as they end, the
pruner's verdict cancels one, and the best completed trial is the search's best."""

from __future__ import annotations

from typing import Any

import pytest

from portal.experiments.models import Search, Trial
from portal.experiments.services import search_advance
from portal.jobs.models import Job
from portal.jobs.scheduling import schedule_pass
from tests.experiments.helpers import create, finish, jobs_in, report, start, trials
from tests.jobs.helpers import node
from workers.messages import CANCEL_ATTEMPT_TASK, node_queue

SH = {"kind": "successive_halving", "min_resource": 1, "reduction_factor": 2}


def test_it_keeps_parallelism_trials_unfinished_and_launches_more_as_they_end(
    owner: Any, iris: Any, mlp: Any
) -> None:
    node(cpu_slots=4)
    search = create(owner, iris, mlp)
    search_advance(search_id=search.pk)
    first = trials(search)
    assert [t.state for t in first] == [Trial.State.RUNNING] * 2
    assert all(t.job is not None and t.job.owner == owner for t in first)
    # Sampled from the space, different per trial, and what the job runs with.
    rates = [t.params["training.learning_rate"] for t in first]
    assert len(set(rates)) == 2 and all(0.001 <= r <= 0.3 for r in rates)
    assert [t.job.spec["training"]["learning_rate"] for t in first if t.job] == rates
    assert first[0].job is not None and first[0].job.spec["training"]["best_metric"] == "val_loss"
    # Nothing new: advancing again launches nothing.
    search_advance(search_id=search.pk)
    assert len(trials(search)) == 2

    schedule_pass()
    attempt = start(first[0].job)
    report(attempt, 0.9, 0.5, 0.4)
    finish(attempt)
    search_advance(search_id=search.pk)
    now = trials(search)
    assert now[0].state == Trial.State.COMPLETED
    assert (now[0].best_value, now[0].final_value) == (0.4, 0.4)
    assert now[0].intermediate == {"1": 0.9, "2": 0.5, "3": 0.4}
    assert len(now) == 3 and now[2].state == Trial.State.RUNNING
    search.refresh_from_db()
    assert search.best_trial_id == now[0].pk and search.state == Search.State.RUNNING


def test_the_pruner_stops_a_worse_trial_and_says_why(
    owner: Any, iris: Any, mlp: Any, broker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    worker = node(cpu_slots=4)
    search = create(owner, iris, mlp, early_stopping=SH)
    search_advance(search_id=search.pk)
    schedule_pass()
    good, bad = trials(search)
    assert good.job is not None and bad.job is not None
    good_attempt, bad_attempt = start(good.job), start(bad.job)
    report(good_attempt, 0.3)
    search_advance(search_id=search.pk)
    report(bad_attempt, 0.8)
    broker.take(node_queue(worker.name))
    with django_capture_on_commit_callbacks(execute=True):
        search_advance(search_id=search.pk)
    good, bad = trials(search)[:2]
    assert good.state == Trial.State.RUNNING
    assert (bad.state, bad.pruned_step) == (Trial.State.PRUNED, 1)
    assert "val_loss 0.8 at epoch 1" in bad.pruned_comparison
    assert "rung 0" in bad.pruned_comparison and "0.3" in bad.pruned_comparison
    assert bad.job is not None and bad.job.state == Job.State.CANCELLING
    assert [t.name for t in broker.take(node_queue(worker.name))] == [CANCEL_ATTEMPT_TASK]
    # Its job still holds a place until its node stops it; then the next trial starts.
    assert len(trials(search)) == 2
    finish(bad_attempt, -15, cancelled=True)
    search_advance(search_id=search.pk)
    pruned = trials(search)[1]
    assert pruned.state == Trial.State.PRUNED and pruned.job is not None
    assert pruned.job.state == Job.State.CANCELLED
    assert len(trials(search)) == 3


def test_the_search_ends_with_the_best_completed_trial(owner: Any, iris: Any, mlp: Any) -> None:
    node(cpu_slots=4)
    search = create(owner, iris, mlp, max_trials=3, parallelism=3)
    search_advance(search_id=search.pk)
    schedule_pass()
    for trial, losses in zip(
        trials(search), [(0.6, 0.5, 0.45), (0.5, 0.2, 0.3), (1.0,)], strict=True
    ):
        attempt = start(trial.job)
        report(attempt, *losses)
        finish(attempt, 0 if len(losses) == 3 else 1)
    search_advance(search_id=search.pk)
    search.refresh_from_db()
    done = trials(search)
    assert [t.state for t in done] == [
        Trial.State.COMPLETED,
        Trial.State.COMPLETED,
        Trial.State.FAILED,
    ]
    assert search.state == Search.State.SUCCEEDED
    # The best by its best epoch (the best checkpoint registering it would take): 0.2.
    assert search.best_trial_id == done[1].pk and done[1].best_value == 0.2
    assert done[1].final_value == 0.3


def test_a_succeeded_trial_waits_for_its_last_epoch_then_completes(
    owner: Any, iris: Any, mlp: Any, settings: Any
) -> None:
    settings.TRAINYARD_SEARCH_METRICS_GRACE_S = 60.0
    node(cpu_slots=4)
    search = create(owner, iris, mlp, parallelism=1)
    search_advance(search_id=search.pk)
    schedule_pass()
    [trial] = trials(search)
    attempt = start(trial.job)
    report(attempt, 0.9, 0.5)
    finish(attempt)
    search_advance(search_id=search.pk)
    assert trials(search)[0].state == Trial.State.RUNNING  # epoch 3's point is still on its way
    report(attempt, 0.45, first_epoch=3)
    search_advance(search_id=search.pk)
    assert trials(search)[0].state == Trial.State.COMPLETED
    assert trials(search)[0].best_value == 0.45


@pytest.mark.parametrize("method", ["random", "tpe"])
def test_a_seeded_search_samples_the_same_points(
    owner: Any, iris: Any, mlp: Any, method: str
) -> None:
    node(cpu_slots=8)
    points = []
    for _ in range(2):
        search = create(owner, iris, mlp, method=method, parallelism=3)
        search_advance(search_id=search.pk)
        points.append([t.params for t in trials(search)])
    assert points[0] == points[1] and len({str(p) for p in points[0]}) == 3
    assert jobs_in(search, Job.State.QUEUED) == 3
