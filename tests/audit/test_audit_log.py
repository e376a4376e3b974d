"""Admin and security-relevant actions land in the audit log, readable by admins only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from portal.accounts.models import ApiToken
from portal.audit.models import AuditEvent
from tests.api.conftest import TokenClient
from tests.factories import make_node

pytestmark = pytest.mark.django_db


def test_creating_and_revoking_a_token_on_the_page_is_recorded_with_the_address(
    client: Client, owner: User
) -> None:
    client.force_login(owner)
    client.post(
        "/account/tokens/",
        {"name": "laptop", "scope": "read", "expires_in_days": "1"},
        REMOTE_ADDR="203.0.113.7",
    )
    token = ApiToken.objects.get(user=owner, name="laptop")
    client.post(f"/account/tokens/{token.pk}/revoke/", REMOTE_ADDR="203.0.113.8")
    client.post(f"/account/tokens/{token.pk}/revoke/")  # already revoked: nothing new

    created, revoked = AuditEvent.objects.filter(
        action__in=[AuditEvent.Action.TOKEN_CREATED, AuditEvent.Action.TOKEN_REVOKED]
    ).order_by("id")
    assert (created.action, created.actor, created.ip_address) == (
        AuditEvent.Action.TOKEN_CREATED,
        owner,
        "203.0.113.7",
    )
    assert created.target == f"token {token.prefix} (laptop)"
    assert created.details["scope"] == "read"
    assert (revoked.action, revoked.actor, revoked.ip_address) == (
        AuditEvent.Action.TOKEN_REVOKED,
        owner,
        "203.0.113.8",
    )


def test_draining_a_node_over_the_api_records_who_did_it(
    client_for: TokenClient, admin_user: User
) -> None:
    node = make_node(cpu_slots=2)
    api = client_for(admin_user)
    assert api.post(f"/api/v1/nodes/{node.name}/drain/").status_code == 200
    assert api.post(f"/api/v1/nodes/{node.name}/drain/").status_code == 200  # no change
    assert api.post(f"/api/v1/nodes/{node.name}/undrain/").status_code == 200

    events = list(
        AuditEvent.objects.filter(target=f"node {node.name}")
        .order_by("id")
        .values_list("action", "actor", "ip_address")
    )
    assert events == [
        (AuditEvent.Action.NODE_DRAINED, admin_user.pk, "127.0.0.1"),
        (AuditEvent.Action.NODE_UNDRAINED, admin_user.pk, "127.0.0.1"),
    ]


def test_draining_from_the_nodes_page_is_recorded(client: Client, admin_user: User) -> None:
    node = make_node(cpu_slots=2)
    client.force_login(admin_user)
    client.post(f"/cluster/nodes/{node.pk}/drain/", {"draining": "true"})

    event = AuditEvent.objects.get(action=AuditEvent.Action.NODE_DRAINED)
    assert (event.actor, event.target) == (admin_user, f"node {node.name}")


def test_admins_read_the_log_in_the_api_newest_first_and_paginated(
    client_for: TokenClient, admin_user: User, owner: User
) -> None:
    api = client_for(admin_user)  # creating the token is itself an event
    client_for(owner)

    body = api.get("/api/v1/audit/?limit=1").json()

    assert body["count"] >= 2
    [newest] = body["results"]
    assert newest["action"] == "token_created"
    assert newest["actor"] == "owner"
    assert set(newest) == {"id", "created_at", "actor", "action", "target", "ip_address", "details"}
    assert api.get("/api/v1/audit/?limit=100000000000000000000").status_code == 200


def test_others_cannot_read_the_log(client_for: TokenClient, owner: User, client: Client) -> None:
    assert client_for(owner).get("/api/v1/audit/").status_code == 403
    client.force_login(owner)
    assert client.get("/audit/").status_code == 404


def test_admins_see_the_log_page(client: Client, admin_user: User, owner: User) -> None:
    client.post("/login/", {"username": "owner", "password": "wrong"}, REMOTE_ADDR="198.51.100.9")
    client.force_login(admin_user)

    page = client.get("/audit/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "Login failed" in text
    assert "198.51.100.9" in text


def test_the_admin_shows_the_log_read_only(client: Client, admin_user: User) -> None:
    admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    event = AuditEvent.objects.create(action=AuditEvent.Action.LOCKOUT, actor_name="x")

    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    response: Any = client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
