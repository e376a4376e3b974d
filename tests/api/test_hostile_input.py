"""Bad input answers 4xx in the API's error shape, never a 500 (the attacks that once did)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from portal.jobs.models import Job
from tests.api.conftest import TokenClient
from tests.factories import make_job

UNSAFE_NAMES = [
    "nul\x00byte",
    "bell\x07",
    "escape\x1b[31mred",
    "right-to-left \u202egpj.exe",
    "isolate \u2066x\u2069",
    "newline\nname",
]


@pytest.mark.django_db
@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_the_api_refuses_control_and_bidi_characters_in_a_job_name(
    client_for: TokenClient, owner: User, job_body: dict[str, Any], name: str
) -> None:
    response = client_for(owner).post("/api/v1/jobs/", {**job_body, "name": name}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["name"]
    assert "Control characters" in response.json()["errors"]["name"][0]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_deeply_nested_body_is_a_400_not_a_recursion_error(
    client_for: TokenClient, owner: User
) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = client_for(owner).post("/api/v1/jobs/", body, content_type="application/json")

    assert response.status_code == 400
    assert "nested deeper" in response.json()["errors"]["__all__"][0]


@pytest.mark.django_db
def test_a_body_nested_past_the_limit_but_parseable_is_refused_too(
    client_for: TokenClient, owner: User
) -> None:
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    body = json.dumps({"name": "x", "dataset": 1, "model": 1, "a": deep})
    response = client_for(owner).post("/api/v1/jobs/", body, content_type="application/json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["__all__"]


@pytest.mark.django_db
def test_a_body_over_the_size_limit_is_a_413_in_the_error_shape(
    client_for: TokenClient, owner: User, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = json.dumps({"name": "x" * 4096, "dataset": 1, "model": 1})
    response = client_for(owner).post("/api/v1/jobs/", body, content_type="application/json")

    assert response.status_code == 413
    assert "larger than 2048 bytes" in response.json()["errors"]["__all__"][0]


HUGE = "100000000000000000000"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/jobs/", "/api/v1/datasets/", "/api/v1/models/"])
@pytest.mark.parametrize("query", [f"limit={HUGE}", f"offset={HUGE}", f"limit={HUGE}&offset=-5"])
def test_huge_page_parameters_are_bounded(
    client_for: TokenClient, owner: User, iris: Any, path: str, query: str
) -> None:
    response = client_for(owner).get(f"{path}?{query}")

    assert response.status_code == 200
    assert len(response.json()["results"]) <= 500


@pytest.mark.django_db
def test_the_page_size_is_capped(client_for: TokenClient, admin_user: User) -> None:
    response = client_for(admin_user).get(f"/api/v1/nodes/?limit={HUGE}")
    assert response.status_code == 200
    assert "limit=500" in (response.json()["next"] or "limit=500")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("suffix", "field"),
    [
        (f"metrics/?after_attempt={HUGE}", "after_attempt"),
        (f"metrics/?after_seq={HUGE}", "after_seq"),
        (f"logs/?after=1.0.{HUGE}", "after"),
        (f"logs/?limit={HUGE}", "limit"),
    ],
)
def test_huge_cursors_are_a_400_with_the_field_named(
    client_for: TokenClient, owner: User, suffix: str, field: str
) -> None:
    job = make_job(owner)
    response = client_for(owner).get(f"/api/v1/jobs/{job.pk}/{suffix}")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


@pytest.mark.django_db
def test_a_huge_job_id_is_a_404(client_for: TokenClient, owner: User) -> None:
    assert client_for(owner).get(f"/api/v1/jobs/{HUGE}/").status_code == 404
