"""The API tokens page: a new token's secret is shown once, and revoking ends it."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.accounts.models import ApiToken
from portal.accounts.services import api_token_authenticate, api_token_create

URL = reverse("accounts:tokens")


def test_creating_a_token_shows_its_secret_once(client: Client, owner: User) -> None:
    client.force_login(owner)

    response = client.post(URL, {"name": "laptop", "scope": "read", "expires_in_days": "30"})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    match = re.search(r'id="token-plaintext">(ty_[^<]+)<', response.content.decode())
    assert match is not None
    plaintext = match.group(1)
    token = api_token_authenticate(plaintext)
    assert token is not None
    assert (token.user, token.name, token.scope) == (owner, "laptop", ApiToken.Scope.READ)
    assert token.expires_at is not None

    later = client.get(URL).content.decode()
    assert plaintext not in later
    assert f"ty_{token.prefix}_…" in later


def test_a_token_without_an_expiry_never_expires(client: Client, owner: User) -> None:
    client.force_login(owner)

    client.post(URL, {"name": "ci", "scope": "write", "expires_in_days": ""})

    assert ApiToken.objects.get(user=owner).expires_at is None


def test_a_token_needs_a_name(client: Client, owner: User) -> None:
    client.force_login(owner)

    response = client.post(URL, {"name": "", "scope": "write", "expires_in_days": "30"})

    assert response.status_code == 400
    assert "name" in response.context["form"].errors
    assert not ApiToken.objects.exists()


def test_the_page_lists_only_the_users_own_tokens(
    client: Client, owner: User, outsider: User
) -> None:
    api_token_create(user=owner, name="mine")
    api_token_create(user=outsider, name="theirs")
    client.force_login(owner)

    response = client.get(URL)

    assert [token.name for token in response.context["tokens"]] == ["mine"]


def test_revoking_a_token_stops_it_working(client: Client, owner: User) -> None:
    issued = api_token_create(user=owner, name="old")
    client.force_login(owner)

    response = client.post(reverse("accounts:revoke", kwargs={"token_id": issued.token.pk}))

    assert response.status_code == 302
    assert response["Location"] == URL
    assert api_token_authenticate(issued.plaintext) is None
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    assert b"Revoked" in client.get(URL).content


def test_a_user_cannot_revoke_someone_elses_token(
    client: Client, owner: User, outsider: User
) -> None:
    issued = api_token_create(user=owner, name="mine")
    client.force_login(outsider)

    response = client.post(reverse("accounts:revoke", kwargs={"token_id": issued.token.pk}))

    assert response.status_code == 404
    assert api_token_authenticate(issued.plaintext) is not None
