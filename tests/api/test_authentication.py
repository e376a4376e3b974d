"""Every API route needs a usable token (or a session); read-only tokens cannot write."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from portal.accounts.models import ApiToken
from portal.accounts.services import api_token_create, api_token_revoke
from tests.api.conftest import TokenClient
from tests.factories import make_node

ROUTES = [
    ("get", "/api/v1/jobs/"),
    ("post", "/api/v1/jobs/"),
    ("get", "/api/v1/jobs/1/"),
    ("post", "/api/v1/jobs/1/cancel/"),
    ("get", "/api/v1/jobs/1/metrics/"),
    ("get", "/api/v1/jobs/1/logs/"),
    ("get", "/api/v1/datasets/"),
    ("get", "/api/v1/models/"),
    ("get", "/api/v1/nodes/"),
    ("post", "/api/v1/nodes/n1/drain/"),
    ("post", "/api/v1/nodes/n1/undrain/"),
    ("get", "/api/v1/schema/"),
]


def bearer(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_it_answers_401_with_a_challenge_without_credentials(method: str, url: str) -> None:
    response = getattr(APIClient(), method)(url)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "plaintext",
    ["ty_nothing_here", "not-even-a-token", "ty_", "ty_abc_def"],
)
def test_it_rejects_a_token_that_names_nothing(owner: User, plaintext: str) -> None:
    response = bearer(plaintext).get("/api/v1/jobs/")

    assert response.status_code == 401
    assert "WWW-Authenticate" in response


def test_it_rejects_a_token_with_the_wrong_secret(owner: User) -> None:
    issued = api_token_create(user=owner, name="script")
    wrong = issued.plaintext[:-4] + ("AAAA" if not issued.plaintext.endswith("AAAA") else "BBBB")

    assert bearer(issued.plaintext).get("/api/v1/jobs/").status_code == 200
    assert bearer(wrong).get("/api/v1/jobs/").status_code == 401


def test_it_rejects_an_expired_token(owner: User) -> None:
    issued = api_token_create(user=owner, name="script")
    ApiToken.objects.filter(pk=issued.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert bearer(issued.plaintext).get("/api/v1/jobs/").status_code == 401


def test_it_rejects_a_revoked_token(owner: User) -> None:
    issued = api_token_create(user=owner, name="script")
    api_token_revoke(token=issued.token)

    assert bearer(issued.plaintext).get("/api/v1/jobs/").status_code == 401


def test_it_rejects_the_token_of_a_deactivated_user(owner: User) -> None:
    issued = api_token_create(user=owner, name="script")
    owner.is_active = False
    owner.save(update_fields=["is_active"])

    assert bearer(issued.plaintext).get("/api/v1/jobs/").status_code == 401


def test_a_read_only_token_can_read_but_not_write(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    client = client_for(owner, scope=ApiToken.Scope.READ)

    assert client.get("/api/v1/jobs/").status_code == 200
    assert client.get("/api/v1/datasets/").status_code == 200
    response = client.post("/api/v1/jobs/", job_body, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "This token is read-only."}


def test_a_read_only_admin_token_cannot_drain_a_node(
    client_for: TokenClient, admin_user: User
) -> None:
    node = make_node("n1")
    client = client_for(admin_user, scope=ApiToken.Scope.READ)

    assert client.get("/api/v1/nodes/").status_code == 200
    assert client.post(f"/api/v1/nodes/{node.name}/drain/").status_code == 403
    node.refresh_from_db()
    assert node.is_draining is False


def test_a_browser_session_can_use_the_api(owner: User) -> None:
    client = APIClient()
    client.force_login(owner)

    assert client.get("/api/v1/jobs/").status_code == 200


def test_a_session_must_send_a_csrf_token_to_write(owner: User, job_body: dict[str, Any]) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)

    response = client.post("/api/v1/jobs/", job_body, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
