"""Ten failed sign-ins in a row lock the account out from that address, on both login pages."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from portal.audit.models import AuditEvent
from tests.factories import PASSWORD, make_user

LOGIN_PAGES = ["/login/", "/admin/login/"]


def sign_in(client: Client, page: str, username: str, password: str) -> Any:
    return client.post(page, {"username": username, "password": password})


@pytest.mark.django_db
@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_the_eleventh_attempt_after_ten_failures_is_locked_out(client: Client, page: str) -> None:
    user = make_user("mallory-target", is_staff=True)

    for attempt in range(1, 11):
        response = sign_in(client, page, user.username, f"wrong-{attempt}")
        if attempt < 10:
            assert response.status_code == 200, attempt  # the form, with its usual error
            assert b"Sign-in locked" not in response.content

    # The right password no longer helps.
    response = sign_in(client, page, user.username, PASSWORD)

    assert response.status_code == 429
    assert b"Sign-in locked" in response.content
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session
    events = AuditEvent.objects.filter(actor_name=user.username)
    # Ten wrong passwords and the refused eleventh attempt.
    assert events.filter(action=AuditEvent.Action.LOGIN_FAILED).count() == 11
    assert events.filter(action=AuditEvent.Action.LOCKOUT).exists()
    assert not events.filter(action=AuditEvent.Action.LOGIN).exists()
    assert set(events.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@pytest.mark.django_db
def test_nine_failures_then_the_right_password_signs_in_and_resets_the_count(
    client: Client,
) -> None:
    user = make_user("forgetful")
    for attempt in range(9):
        sign_in(client, "/login/", user.username, f"wrong-{attempt}")

    response = sign_in(client, "/login/", user.username, PASSWORD)

    assert response.status_code == 302
    login = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN)
    assert (login.actor, login.ip_address) == (user, "127.0.0.1")
    # A success resets the count: nine more failures are not a lockout.
    other = Client()
    for attempt in range(9):
        assert sign_in(other, "/login/", user.username, f"again-{attempt}").status_code == 200


@pytest.mark.django_db
def test_a_lockout_is_per_user_and_address_so_others_still_sign_in(client: Client) -> None:
    victim, bystander = make_user("victim"), make_user("bystander")
    for attempt in range(10):
        sign_in(client, "/login/", victim.username, f"wrong-{attempt}")

    assert sign_in(client, "/login/", bystander.username, PASSWORD).status_code == 302
    assert isinstance(User.objects.get(username="bystander"), User)
