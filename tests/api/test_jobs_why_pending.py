"""Why a job waits, in the API (`why_pending`, `estimated_start`), and the plan preview
(`POST /api/v1/jobs/?dry_run=true`): it stores nothing and answers what the pass then does."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from portal.jobs.models import Attempt, Job, Placement
from portal.jobs.scheduling import schedule_pass
from tests.api.conftest import TokenClient
from tests.factories import make_node, make_user


def preview(client_for: TokenClient, user: User, body: dict[str, Any]) -> dict[str, Any]:
    response = client_for(user).post("/api/v1/jobs/?dry_run=true", body, format="json")
    assert response.status_code == 200, response.json()
    answer: dict[str, Any] = response.json()
    return answer


def counts() -> tuple[int, int, int]:
    return Job.objects.count(), Attempt.objects.count(), Placement.objects.count()


def test_a_queued_job_shows_its_position_the_jobs_ahead_the_node_counts_and_its_estimate(
    client_for: TokenClient, submit: Any, owner: User, outsider: User, cpu_node: Any
) -> None:
    make_node(cpu_slots=2, is_draining=True)
    running = submit(outsider)  # takes the 2-slot node
    ahead = submit(outsider)
    mine = submit(owner)
    schedule_pass()

    body = client_for(owner).get(f"/api/v1/jobs/{mine}/").json()
    why = body["why_pending"]
    assert (why["position"], why["queue_length"], why["queue"]) == (2, 2, "default")
    # The outsider's job is ahead: its id, but not its owner or size.
    assert why["ahead"] == [{"id": ahead, "owner": None, "size": None}]
    counts_by = {c["constraint"]: c["nodes"] for c in why["constraints"]}
    assert counts_by == {"node_state": 1, "size": 0, "free": 1, "reservation": 0}
    assert why["quota"] is None
    ends = Job.objects.get(pk=running).attempts.get().created_at
    assert body["estimated_start"] == why["estimated_start"] is not None
    assert body["estimated_start"] > ends.isoformat()

    # The outsider sees their own job ahead of the owner's in full.
    theirs = client_for(outsider).get(f"/api/v1/jobs/{ahead}/").json()
    assert theirs["why_pending"]["position"] == 1
    admin = make_user(is_staff=True)
    listed = client_for(admin).get("/api/v1/jobs/?state=queued").json()
    [mine_listed] = [job for job in listed["results"] if job["id"] == mine]
    assert mine_listed["why_pending"]["ahead"] == [
        {"id": ahead, "owner": "outsider", "size": "1 x 2 CPU slots"}
    ]


def test_the_why_pending_field_is_typed_in_the_openapi_schema(client_for, owner) -> None:
    schema = client_for(owner).get("/api/v1/schema/?format=json").json()
    job = schema["components"]["schemas"]["Job"]["properties"]
    assert "why_pending" in job and "estimated_start" in job
    why = schema["components"]["schemas"]["WhyPending"]["properties"]
    assert {"position", "ahead", "constraints", "quota", "estimated_start"} <= set(why)


@pytest.mark.parametrize("busy", [False, True])
def test_the_dry_run_stores_nothing_and_answers_what_the_pass_then_does(
    client_for: TokenClient, submit: Any, owner: User, job_body: dict[str, Any], busy: bool
) -> None:
    if busy:
        submit(owner)
        submit(owner)
        schedule_pass()
    before = counts()

    answer = preview(client_for, owner, job_body)

    assert counts() == before
    job_id = submit(owner)
    assert schedule_pass() == (0 if busy else 1)
    job = Job.objects.get(pk=job_id)
    assert answer["would_start"] is (not busy)
    if busy:
        assert job.state == Job.State.QUEUED and job.why_pending is not None
        assert answer["jobs_ahead"] == job.why_pending["position"] - 1 == 1
        assert answer["reason"] == job.state_reason
        assert answer["estimated_start"] is not None
        assert answer["why_pending"]["constraints"] == job.why_pending["constraints"]
        assert answer["binding_limit"] is None
    else:
        assert job.state == Job.State.SCHEDULED
        placed = [p.node.name for p in job.attempts.get().placements.select_related("node")]
        assert answer["nodes"] == placed


def test_a_dry_run_of_an_invalid_request_answers_400_like_a_submit(
    client_for: TokenClient, owner: User, job_body: dict[str, Any]
) -> None:
    job_body["resources"]["procs_per_node"] = 64
    response = client_for(owner).post("/api/v1/jobs/?dry_run=true", job_body, format="json")
    assert response.status_code == 400
    assert "resources.procs_per_node" in response.json()["errors"]
    assert not Job.objects.exists()
