"""`manage.py token_create`: prints a working token once, and nothing else on stdout."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from portal.accounts.models import ApiToken


def token_create(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("token_create", *args, stdout=out, stderr=err)
    assert "will not be shown again" in err.getvalue()
    return out.getvalue().strip()


def test_it_prints_a_token_that_authenticates_as_the_user(owner: User) -> None:
    plaintext = token_create("--user", "owner", "--name", "ci")

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert client.get("/api/v1/jobs/").status_code == 200
    token = ApiToken.objects.get(user=owner)
    assert token.name == "ci"
    assert token.scope == ApiToken.Scope.WRITE
    assert plaintext.startswith(f"ty_{token.prefix}_")
    assert token.digest not in plaintext


def test_it_creates_read_only_tokens_that_expire(owner: User) -> None:
    token_create("--user", "owner", "--scope", "read", "--days", "7")

    token = ApiToken.objects.get(user=owner)
    assert token.scope == ApiToken.Scope.READ
    assert token.expires_at is not None
    assert 6.9 < (token.expires_at - token.created_at).total_seconds() / 86400 <= 7


@pytest.mark.django_db
def test_it_refuses_an_unknown_user() -> None:
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        token_create("--user", "ghost")
    assert not ApiToken.objects.exists()


def test_it_refuses_a_token_that_never_expires(owner: User) -> None:
    with pytest.raises(CommandError, match="--days"):
        token_create("--user", "owner", "--days", "0")
    assert not ApiToken.objects.exists()
