"""The jobs list, one job's page, and cancelling from it."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.jobs.models import Job
from tests.factories import make_job


def test_the_list_shows_own_and_teammates_jobs_but_not_outsiders(
    client: Client,
    owner: User,
    teammate: User,
    outsider: User,
    submit_job: Any,
) -> None:
    mine = submit_job(owner, "mine")
    ours = submit_job(teammate, "teammates")
    theirs = submit_job(outsider, "outsiders")
    client.force_login(owner)

    response = client.get(reverse("jobs:list"))

    assert response.status_code == 200
    listed = {row["job"].pk for row in response.context["rows"]}
    assert listed == {mine.pk, ours.pk}
    assert theirs.pk not in listed
    assert f'data-job-id="{mine.pk}"'.encode() in response.content
    assert b'data-testid="job-state" data-state="queued"' in response.content


def test_the_list_costs_the_same_queries_for_many_jobs(
    client: Client, owner: User, submit_job: Any, django_assert_max_num_queries: Any
) -> None:
    for index in range(12):
        submit_job(owner, f"job-{index}")
    client.force_login(owner)

    # Session, user, the filter form's choices (teams, people, datasets, models) and one
    # page of jobs with their owner, dataset and model joined (no count: pages are keyset).
    with django_assert_max_num_queries(8):
        response = client.get(reverse("jobs:list"))
    assert len(response.context["rows"]) == 12


def test_a_job_page_shows_the_job_with_its_live_hooks(
    client: Client, owner: User, submit_job: Any
) -> None:
    job = submit_job(owner, "iris-page")
    client.force_login(owner)

    response = client.get(reverse("jobs:detail", kwargs={"job_id": job.pk}))

    assert response.status_code == 200
    content = response.content.decode()
    assert "iris-page" in content
    for hook in (
        'data-testid="job-state"',
        'data-testid="chart-loss"',
        'data-testid="point-count"',
    ):
        assert hook in content
    assert f'"wsPath": "/ws/jobs/{job.pk}/"' in content
    assert reverse("jobs:cancel", kwargs={"job_id": job.pk}) in content
    assert "/static/vendor/uplot/uPlot.min.css" in content


def test_a_queued_job_page_shows_where_it_stands_in_the_queue(
    client: Client, owner: User, submit_job: Any
) -> None:
    submit_job(owner, "first")
    second = submit_job(owner, "second")
    client.force_login(owner)

    response = client.get(reverse("jobs:detail", kwargs={"job_id": second.pk}))

    assert response.context["queue_position"] == 2
    assert b'data-testid="queue-position">2</dd>' in response.content


def test_a_running_job_page_shows_no_queue_position(client: Client, owner: User) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    client.force_login(owner)

    response = client.get(reverse("jobs:detail", kwargs={"job_id": job.pk}))

    assert response.context["queue_position"] is None
    assert b'data-testid="queue-position"' not in response.content


def test_another_users_job_page_is_not_found(
    client: Client, owner: User, outsider: User, submit_job: Any
) -> None:
    job = submit_job(owner)
    client.force_login(outsider)

    assert client.get(reverse("jobs:detail", kwargs={"job_id": job.pk})).status_code == 404


def test_a_teammate_may_open_the_job_page(
    client: Client, owner: User, teammate: User, submit_job: Any
) -> None:
    job = submit_job(owner)
    client.force_login(teammate)

    assert client.get(reverse("jobs:detail", kwargs={"job_id": job.pk})).status_code == 200


def test_cancelling_a_queued_job_cancels_it_and_returns_to_its_page(
    client: Client, owner: User, submit_job: Any
) -> None:
    job = submit_job(owner)
    client.force_login(owner)

    response = client.post(reverse("jobs:cancel", kwargs={"job_id": job.pk}))

    assert response.status_code == 302
    assert response["Location"] == reverse("jobs:detail", kwargs={"job_id": job.pk})
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED
    page = client.get(response["Location"])
    assert b'data-state="cancelled"' in page.content
    # A finished job offers no cancel button.
    assert reverse("jobs:cancel", kwargs={"job_id": job.pk}).encode() not in page.content


def test_cancel_needs_a_post(client: Client, owner: User, submit_job: Any) -> None:
    job = submit_job(owner)
    client.force_login(owner)

    response = client.get(reverse("jobs:cancel", kwargs={"job_id": job.pk}))

    assert response.status_code == 405
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED


def test_cancel_needs_the_csrf_token(client: Client, owner: User, submit_job: Any) -> None:
    job = submit_job(owner)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)

    response = strict.post(reverse("jobs:cancel", kwargs={"job_id": job.pk}))

    assert response.status_code == 403
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED


def test_another_user_cannot_cancel_a_job(
    client: Client, owner: User, outsider: User, submit_job: Any
) -> None:
    job = submit_job(owner)
    client.force_login(outsider)

    response = client.post(reverse("jobs:cancel", kwargs={"job_id": job.pk}))

    assert response.status_code == 404
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED
