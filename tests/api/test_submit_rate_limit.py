"""A flood of submissions from one user gets 429 with Retry-After, from the API and the form."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from portal.jobs.models import Job
from tests.api.conftest import TokenClient
from tests.factories import make_user


@pytest.fixture
def rate(settings: Any) -> Iterator[str]:
    settings.TRAINYARD_SUBMIT_RATE = "3/minute"
    cache.clear()
    yield settings.TRAINYARD_SUBMIT_RATE
    cache.clear()


@pytest.mark.django_db
def test_the_api_answers_429_with_retry_after_once_the_rate_is_spent(
    rate: str, client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    client = client_for(owner)
    statuses = [client.post("/api/v1/jobs/", job_body, format="json").status_code for _ in range(5)]

    assert statuses == [201, 201, 201, 429, 429]
    flooded = client.post("/api/v1/jobs/", job_body, format="json")
    assert flooded.status_code == 429
    assert 1 <= int(flooded["Retry-After"]) <= 60
    assert "throttled" in flooded.json()["detail"]
    assert Job.objects.filter(owner=owner).count() == 3
    # Reading is not limited, and another user has an allowance of their own.
    assert client.get("/api/v1/jobs/").status_code == 200
    other = client_for(make_user("other"))
    assert other.post("/api/v1/jobs/", job_body, format="json").status_code == 201


@pytest.mark.django_db
def test_the_form_shares_the_allowance_and_says_why(
    rate: str,
    client_for: TokenClient,
    owner: User,
    job_body: dict[str, Any],
) -> None:
    api = client_for(owner)
    for _ in range(3):
        assert api.post("/api/v1/jobs/", job_body, format="json").status_code == 201
    browser = Client()
    browser.force_login(owner)
    form = {
        "name": "from-the-form",
        "dataset": str(job_body["dataset"]),
        "model": str(job_body["model"]),
        "hp_hidden_sizes": "8",
        "hp_activation": "relu",
        "hp_dropout": "0",
        "hp_output": "logits",
        "epochs": "2",
        "batch_size": "16",
        "learning_rate": "0.05",
        "optimizer": "adam",
        "loss": "cross_entropy",
        "seed": "0",
        "checkpoint_every": "1",
        "keep_last": "2",
        "best_metric": "val_loss",
        "nodes": "1",
        "procs_per_node": "1",
        "gpus_per_node": "0",
        "priority": "0",
        "max_restarts": "0",
    }

    response = browser.post(reverse("jobs:new"), form)

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert "submitting jobs too fast" in response.content.decode()
    assert Job.objects.filter(owner=owner).count() == 3
