"""The predict endpoint's bounds, checked in the web process before any worker is asked, and
the 503 when no predict worker answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from portal.registry.models import ModelVersion
from tests.registry.conftest import TokenClient
from tests.registry.support import make_model_version, signed_in
from workers.messages import PREDICT_QUEUE


@pytest.fixture
def version(owner: User) -> ModelVersion:
    return make_model_version(owner)


@pytest.fixture
def no_predict_worker(settings: Any) -> Iterator[None]:
    """No worker consumes `predict` in these tests: a request waits briefly, then gives up;
    the message it left is removed."""
    settings.TRAINYARD_PREDICT_TIMEOUT_S = 0.5
    yield
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.delete(PREDICT_QUEUE)
    client.close()


def predict(api: TokenClient, user: User, version: ModelVersion, body: Any) -> Any:
    return api(user).post(f"/api/v1/model-versions/{version.pk}/predict/", body, format="json")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rows": []}, "Ensure this field has at least 1 elements."),
        ({"rows": [{"a": 1}] * 1001}, "Ensure this field has no more than 1000 elements."),
        ({"rows": "a,b"}, 'Expected a list of items but got type "str".'),
        ({}, "This field is required."),
    ],
)
def test_it_refuses_a_batch_out_of_bounds(
    api: TokenClient, owner: User, version: ModelVersion, body: Any, message: str
) -> None:
    response = predict(api, owner, version, body)

    assert response.status_code == 400
    assert response.json()["errors"]["rows"] == [message]


def test_it_refuses_a_body_over_the_limit(
    api: TokenClient, owner: User, version: ModelVersion, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    rows = [{"a": 1.0, "b": 2.0, "pad": "x" * 100} for _ in range(200)]

    response = api(owner).post(
        f"/api/v1/model-versions/{version.pk}/predict/",
        json.dumps({"rows": rows}),
        content_type="application/json",
    )

    assert response.status_code == 413


def test_without_a_predict_worker_it_answers_503_saying_so(
    api: TokenClient, owner: User, version: ModelVersion, no_predict_worker: None
) -> None:
    response = predict(api, owner, version, {"rows": [{"a": 1.0, "b": 2.0}]})

    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "no worker on the 'predict' queue answered within 0.5 s" in detail
    assert "is the predict process running?" in detail


def test_the_try_it_form_says_when_no_worker_answers(
    owner: User, version: ModelVersion, no_predict_worker: None
) -> None:
    response = signed_in(owner).post(
        f"/trained-models/{version.pk}/try/", {"rows": '[{"a": 1, "b": 2}]'}
    )

    assert response.status_code == 503
    assert "No prediction worker answered" in response.content.decode()


def test_the_try_it_form_refuses_text_that_is_not_json(owner: User, version: ModelVersion) -> None:
    response = signed_in(owner).post(f"/trained-models/{version.pk}/try/", {"rows": "[{oops"})

    assert response.status_code == 400
    assert "This is not JSON" in response.content.decode()
