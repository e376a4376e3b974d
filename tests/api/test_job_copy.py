"""Run again with changes through the API: `copy_from` plus overrides over the stored spec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User

from portal.jobs.models import Job
from tests.api.conftest import TokenClient


def spec_difference(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> set[str]:
    """The dotted paths where two specs differ."""
    paths: set[str] = set()
    for key in set(a) | set(b):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            paths |= spec_difference(left, right, f"{prefix}{key}.")
        elif left != right:
            paths.add(f"{prefix}{key}")
    return paths


def test_a_copy_differs_from_its_source_only_by_the_edited_field(
    owner: User, client_for: TokenClient, submit: Callable[..., int]
) -> None:
    source_id = submit(
        owner,
        hyperparameters={"hidden_sizes": [6, 6], "dropout": 0.2},
        scheduling={"preemptible": True, "max_run_time_minutes": 30},
    )
    response = client_for(owner).post(
        "/api/v1/jobs/", {"copy_from": source_id, "training": {"epochs": 7}}, format="json"
    )

    assert response.status_code == 201, response.json()
    source, copy = Job.objects.get(pk=source_id), Job.objects.get(pk=response.json()["id"])
    assert copy.pk != source.pk and copy.state == Job.State.QUEUED
    assert spec_difference(source.spec, copy.spec) == {"training.epochs"}
    assert (source.spec["training"]["epochs"], copy.spec["training"]["epochs"]) == (2, 7)
    # What is not in the request body's override stays, the job's columns included.
    assert copy.preemptible is True and copy.max_run_time_s == 30 * 60
    assert copy.spec["hyperparameters"]["hidden_sizes"] == [6, 6]


def test_a_hyperparameter_override_merges_into_the_sources(
    owner: User, client_for: TokenClient, submit: Callable[..., int]
) -> None:
    source_id = submit(owner, hyperparameters={"hidden_sizes": [6, 6], "dropout": 0.2})
    response = client_for(owner).post(
        "/api/v1/jobs/",
        {"copy_from": source_id, "hyperparameters": {"dropout": 0.0}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    source, copy = Job.objects.get(pk=source_id), Job.objects.get(pk=response.json()["id"])
    assert spec_difference(source.spec, copy.spec) == {"hyperparameters.dropout"}


def test_copying_a_job_you_cannot_see_is_a_404(
    owner: User, outsider: User, client_for: TokenClient, submit: Callable[..., int]
) -> None:
    source_id = submit(owner)
    api = client_for(outsider)
    assert api.post("/api/v1/jobs/", {"copy_from": source_id}, format="json").status_code == 404
    assert api.post("/api/v1/jobs/", {"copy_from": 10**12}, format="json").status_code == 404
    assert Job.objects.count() == 1


def test_bad_overrides_and_ids_are_400s_on_their_fields(
    owner: User, client_for: TokenClient, submit: Callable[..., int]
) -> None:
    source_id = submit(owner)
    api = client_for(owner)
    bad = api.post(
        "/api/v1/jobs/", {"copy_from": source_id, "training": {"epochs": "7"}}, format="json"
    )
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["training.epochs"]
    for value in ("7", True, None, [1]):
        wrong = api.post("/api/v1/jobs/", {"copy_from": value}, format="json")
        assert wrong.status_code == 400 and list(wrong.json()["errors"]) == ["copy_from"]
