"""Helpers for the search tests: a search request over the built-in Iris and MLP, and a trial's
job driven through its life by the real services (placement, start, metric points, exit)."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from portal.catalog.models import Dataset, ModelArchitecture
from portal.experiments.models import Search, Trial
from portal.experiments.schemas import SearchRequest
from portal.experiments.services import search_create
from portal.jobs.models import Attempt, Job, MetricPoint
from portal.jobs.services import attempt_exited, attempt_started
from tests.jobs.helpers import exited, placements, started

LR = {"name": "training.learning_rate", "kind": "log_uniform", "low": 0.001, "high": 0.3}


def search_body(iris: Dataset, mlp: ModelArchitecture, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "lr sweep",
        "job": {
            "dataset": iris.pk,
            "model": mlp.pk,
            "training": {"epochs": 3},
            "resources": {"nodes": 1, "procs_per_node": 1},
        },
        "space": [LR],
        "method": "random",
        "max_trials": 4,
        "parallelism": 2,
        "seed": 7,
    }
    body.update(changes)
    return body


def create(user: User, iris: Dataset, mlp: ModelArchitecture, **changes: Any) -> Search:
    return search_create(
        user=user, request=SearchRequest.model_validate(search_body(iris, mlp, **changes))
    )


def start(job: Job | None) -> Attempt:
    """The job's (placed) attempt, started on its node."""
    assert job is not None
    attempt = job.attempts.get()
    attempt_started(started(placements(attempt)[0]))
    return attempt


def report(attempt: Attempt, *losses: float, first_epoch: int = 1) -> None:
    """Validation points for consecutive epochs, stored as ingest stores them."""
    seq = MetricPoint.objects.filter(attempt=attempt).count()
    MetricPoint.objects.bulk_create(
        MetricPoint(
            job_id=attempt.job_id,
            attempt=attempt,
            seq=seq + index,
            split=MetricPoint.Split.VAL,
            step=10 * (first_epoch + index),
            epoch=first_epoch + index,
            loss=loss,
            accuracy=1.0 - loss,
            reported_at=timezone.now(),
        )
        for index, loss in enumerate(losses)
    )


def finish(attempt: Attempt, exit_code: int = 0, *, cancelled: bool = False) -> None:
    attempt_exited(exited(placements(attempt)[0], exit_code, cancelled=cancelled))


def trials(search: Search) -> list[Trial]:
    return list(search.trials.select_related("job").order_by("number"))


def jobs_in(search: Search, *states: str) -> int:
    return Job.objects.filter(trial__search=search, state__in=states).count()


def wait(seconds: float) -> None:
    time.sleep(seconds)
