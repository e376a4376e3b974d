"""Who sees which job: owner and team read and act; others get 404, never 403; admins see all."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.cluster.models import Node
from portal.jobs.models import Job
from tests.api.conftest import TokenClient
from tests.factories import make_attempt, make_node

Submit = Callable[..., int]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("post", "cancel/"), ("get", "metrics/"), ("get", "logs/")],
)
def test_it_answers_404_for_another_users_job(
    client_for: TokenClient,
    submit: Submit,
    owner: User,
    outsider: User,
    method: str,
    suffix: str,
) -> None:
    job_id = submit(owner)

    response = getattr(client_for(outsider), method)(f"/api/v1/jobs/{job_id}/{suffix}")

    assert response.status_code == 404
    assert "id" not in response.json()
    assert Job.objects.get(pk=job_id).state == Job.State.QUEUED


def test_it_answers_404_for_a_job_that_does_not_exist(client_for: TokenClient, owner: User) -> None:
    assert client_for(owner).get("/api/v1/jobs/999999/").status_code == 404


def test_it_leaves_another_users_job_out_of_the_list(
    client_for: TokenClient, submit: Submit, owner: User, outsider: User
) -> None:
    submit(owner)
    mine = submit(outsider)

    response = client_for(outsider).get("/api/v1/jobs/")

    assert response.status_code == 200
    assert [job["id"] for job in response.json()["results"]] == [mine]
    assert response.json()["count"] == 1


def test_a_teammate_can_read_the_job_its_metrics_and_logs(
    client_for: TokenClient, submit: Submit, owner: User, teammate: User
) -> None:
    job_id = submit(owner)
    client = client_for(teammate)

    assert client.get(f"/api/v1/jobs/{job_id}/").json()["owner"] == "owner"
    assert client.get(f"/api/v1/jobs/{job_id}/metrics/").status_code == 200
    assert client.get(f"/api/v1/jobs/{job_id}/logs/").status_code == 200
    assert [job["id"] for job in client.get("/api/v1/jobs/").json()["results"]] == [job_id]


def test_an_admin_can_read_every_job(
    client_for: TokenClient,
    submit: Submit,
    owner: User,
    outsider: User,
    admin_user: User,
) -> None:
    first = submit(owner)
    second = submit(outsider)
    client = client_for(admin_user)

    listed = client.get("/api/v1/jobs/").json()["results"]

    assert {job["id"] for job in listed} == {first, second}
    assert client.get(f"/api/v1/jobs/{first}/").json()["owner"] == "owner"


def test_it_filters_the_list_by_state(client_for: TokenClient, submit: Submit, owner: User) -> None:
    cancelled = submit(owner)
    queued = submit(owner)
    client = client_for(owner)
    assert client.post(f"/api/v1/jobs/{cancelled}/cancel/").status_code == 202

    def ids(query: str) -> list[int]:
        return [job["id"] for job in client.get(f"/api/v1/jobs/{query}").json()["results"]]

    assert ids("?state=queued") == [queued]
    assert ids("?state=cancelled") == [cancelled]
    assert ids("") == [queued, cancelled]  # newest first


def test_it_rejects_an_unknown_state_filter(client_for: TokenClient, owner: User) -> None:
    response = client_for(owner).get("/api/v1/jobs/?state=sleeping")

    assert response.status_code == 400
    assert "state" in response.json()["errors"]


def test_the_job_list_is_paginated(client_for: TokenClient, submit: Submit, owner: User) -> None:
    ids = [submit(owner) for _ in range(3)]

    body = client_for(owner).get("/api/v1/jobs/?limit=2").json()

    assert body["count"] == 3
    assert [job["id"] for job in body["results"]] == ids[::-1][:2]
    assert body["next"].endswith("limit=2&offset=2")


def test_the_job_list_costs_the_same_queries_for_one_job_or_many(
    client_for: TokenClient, submit: Submit, owner: User, cpu_node: Node
) -> None:
    client = client_for(owner)

    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/jobs/").status_code == 200
        return len(queries)

    make_attempt(Job.objects.get(pk=submit(owner)), nodes=[cpu_node])
    one = queries_for_list()
    for _ in range(4):
        job = Job.objects.get(pk=submit(owner))
        make_attempt(job, nodes=[cpu_node])
        make_attempt(job, nodes=[cpu_node, make_node()])

    assert queries_for_list() == one
