"""POST /api/v1/jobs/<id>/cancel/: accepted (202), idempotent, for the owner and the team."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User

from portal.jobs.models import Job
from tests.api.conftest import TokenClient

Submit = Callable[..., int]


def test_it_cancels_a_queued_job(client_for: TokenClient, submit: Submit, owner: User) -> None:
    job_id = submit(owner)

    response = client_for(owner).post(f"/api/v1/jobs/{job_id}/cancel/")

    assert response.status_code == 202
    assert response.json()["id"] == job_id
    assert response.json()["state"] == "cancelled"
    job = Job.objects.get(pk=job_id)
    assert job.state == Job.State.CANCELLED
    assert job.finished_at is not None


def test_cancelling_twice_changes_nothing_the_second_time(
    client_for: TokenClient, submit: Submit, owner: User
) -> None:
    job_id = submit(owner)
    client = client_for(owner)
    first = client.post(f"/api/v1/jobs/{job_id}/cancel/").json()

    second = client.post(f"/api/v1/jobs/{job_id}/cancel/")

    assert second.status_code == 202
    assert second.json()["state"] == "cancelled"
    assert second.json()["finished_at"] == first["finished_at"]


def test_a_teammate_can_cancel_the_teams_job(
    client_for: TokenClient, submit: Submit, owner: User, teammate: User
) -> None:
    job_id = submit(owner)

    response = client_for(teammate).post(f"/api/v1/jobs/{job_id}/cancel/")

    assert response.status_code == 202
    assert Job.objects.get(pk=job_id).state == Job.State.CANCELLED
