"""The admin's escape hatches: actions that move state through the services."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.accounts.models import ApiToken
from portal.accounts.services import api_token_create
from portal.jobs.models import Job
from tests.factories import make_job, make_node


def run_action(client: Client, changelist: str, action: str, *pks: int) -> None:
    response = client.post(
        reverse(f"admin:{changelist}_changelist"),
        {"action": action, "_selected_action": [str(pk) for pk in pks]},
    )
    assert response.status_code == 302


def test_cancel_cancels_a_queued_job_and_leaves_a_finished_one(
    admin_client_for: Client, owner: User, admin_user: User
) -> None:
    queued = make_job(owner)
    done = make_job(owner, state=Job.State.SUCCEEDED)

    run_action(admin_client_for, "jobs_job", "cancel", queued.pk, done.pk)

    queued.refresh_from_db()
    done.refresh_from_db()
    assert queued.state == Job.State.CANCELLED
    assert admin_user.username in queued.state_reason
    assert done.state == Job.State.SUCCEEDED


def test_drain_and_undrain_go_through_the_service(admin_client_for: Client) -> None:
    busy, idle = make_node("busy"), make_node("idle")

    run_action(admin_client_for, "cluster_node", "drain", busy.pk, idle.pk)
    busy.refresh_from_db()
    idle.refresh_from_db()
    assert busy.is_draining and idle.is_draining

    run_action(admin_client_for, "cluster_node", "undrain", idle.pk)
    busy.refresh_from_db()
    idle.refresh_from_db()
    assert busy.is_draining and not idle.is_draining


def test_revoke_revokes_a_token_which_then_no_longer_authenticates(
    admin_client_for: Client, owner: User
) -> None:
    issued = api_token_create(user=owner, name="ci", scope=ApiToken.Scope.WRITE, expires_in=None)

    run_action(admin_client_for, "accounts_apitoken", "revoke", issued.token.pk)

    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    response = Client().get("/api/v1/jobs/", HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert response.status_code == 401
