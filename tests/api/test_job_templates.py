"""Job templates in the API: save (a spec or a job's), list, read, submit with overrides,
delete; a team's template is its members'; another user's answers 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User

from portal.jobs.models import Job, JobTemplate
from tests.api.conftest import TokenClient
from tests.api.test_job_copy import spec_difference

URL = "/api/v1/job-templates/"


def test_save_list_submit_and_delete(
    owner: User, client_for: TokenClient, job_body: dict[str, Any]
) -> None:
    api = client_for(owner)
    saved = api.post(URL, {"name": "iris small", "spec": job_body}, format="json")
    assert saved.status_code == 201, saved.json()
    template = saved.json()
    assert (template["name"], template["owner"], template["team"]) == ("iris small", "owner", None)
    assert template["spec"]["training"]["epochs"] == 2
    assert [t["name"] for t in api.get(URL).json()["results"]] == ["iris small"]

    submitted = api.post(
        f"{URL}{template['id']}/submit/", {"training": {"epochs": 4}}, format="json"
    )
    assert submitted.status_code == 201, submitted.json()
    job = Job.objects.get(pk=submitted.json()["id"])
    assert job.spec["training"]["epochs"] == 4
    assert job.spec["training"]["learning_rate"] == 0.05
    plain = api.post(f"{URL}{template['id']}/submit/", format="json")
    assert plain.status_code == 201
    assert Job.objects.get(pk=plain.json()["id"]).spec["training"]["epochs"] == 2

    assert api.delete(f"{URL}{template['id']}/").status_code == 204
    assert not JobTemplate.objects.exists()


def test_a_template_from_a_job_submits_the_same_spec(
    owner: User, client_for: TokenClient, submit: Callable[..., int]
) -> None:
    job_id = submit(owner, hyperparameters={"hidden_sizes": [5]})
    api = client_for(owner)
    template = api.post(URL, {"name": "from job", "from_job": job_id}, format="json").json()
    again = api.post(f"{URL}{template['id']}/submit/", {"max_restarts": 2}, format="json")
    assert again.status_code == 201, again.json()
    source, copy = Job.objects.get(pk=job_id), Job.objects.get(pk=again.json()["id"])
    assert spec_difference(source.spec, copy.spec) == {"max_restarts"}


def test_names_are_unique_per_owner_unless_replaced(
    owner: User, teammate: User, client_for: TokenClient, job_body: dict[str, Any]
) -> None:
    api = client_for(owner)
    assert api.post(URL, {"name": "t", "spec": job_body}, format="json").status_code == 201
    again = api.post(URL, {"name": "t", "spec": job_body}, format="json")
    assert again.status_code == 400 and list(again.json()["errors"]) == ["name"]
    replaced = api.post(
        URL,
        {"name": "t", "spec": {**job_body, "priority": 5}, "replace": True},
        format="json",
    )
    assert replaced.status_code == 201 and replaced.json()["spec"]["priority"] == 5
    # The same name is free for another user, and for a team.
    assert (
        client_for(teammate).post(URL, {"name": "t", "spec": job_body}, format="json").status_code
        == 201
    )
    team = api.post(URL, {"name": "t", "spec": job_body, "team": "vision"}, format="json")
    assert team.status_code == 201 and team.json()["team"] == "vision"
    assert JobTemplate.objects.count() == 3


def test_a_teams_template_is_its_members_and_nobody_elses(
    owner: User, teammate: User, outsider: User, client_for: TokenClient, job_body: dict[str, Any]
) -> None:
    shared = (
        client_for(owner)
        .post(URL, {"name": "shared", "spec": job_body, "team": "vision"}, format="json")
        .json()
    )
    mine = client_for(owner).post(URL, {"name": "mine", "spec": job_body}, format="json").json()

    mate = client_for(teammate)
    assert [t["name"] for t in mate.get(URL).json()["results"]] == ["shared"]
    assert mate.post(f"{URL}{shared['id']}/submit/", format="json").status_code == 201
    assert mate.get(f"{URL}{mine['id']}/").status_code == 404

    other = client_for(outsider)
    assert other.get(URL).json()["count"] == 0
    for template in (shared, mine):
        assert other.get(f"{URL}{template['id']}/").status_code == 404
        assert other.post(f"{URL}{template['id']}/submit/", format="json").status_code == 404
        assert other.delete(f"{URL}{template['id']}/").status_code == 404
    refused = other.post(URL, {"name": "x", "spec": job_body, "team": "vision"}, format="json")
    assert refused.status_code == 400 and list(refused.json()["errors"]) == ["team"]


def test_an_invalid_spec_is_refused_by_dotted_path(
    owner: User, client_for: TokenClient, job_body: dict[str, Any]
) -> None:
    api = client_for(owner)
    bad = api.post(
        URL, {"name": "bad", "spec": {**job_body, "training": {"epochs": 0}}}, format="json"
    )
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["spec.training.epochs"]
    both = api.post(URL, {"name": "x", "spec": job_body, "from_job": 1}, format="json")
    assert both.status_code == 400
    template = api.post(URL, {"name": "ok", "spec": job_body}, format="json").json()
    wrong = api.post(f"{URL}{template['id']}/submit/", {"training": {"epochs": -1}}, format="json")
    assert wrong.status_code == 400 and list(wrong.json()["errors"]) == ["training.epochs"]
