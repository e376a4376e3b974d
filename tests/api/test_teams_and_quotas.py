"""The teams and quotas API: members read their own teams, admins change everything;
a team you are not in answers 404, a change you may not make answers 403."""

from __future__ import annotations

from typing import Any

from portal.accounts.models import Quota, Team
from portal.audit.models import AuditEvent
from tests.api.conftest import TokenClient
from tests.factories import make_team


def test_admins_create_rename_and_delete_teams_and_manage_members(
    client_for: TokenClient, admin_user, owner, outsider
):
    api = client_for(admin_user)
    created = api.post("/api/v1/teams/", {"name": "vision"}, format="json")
    assert created.status_code == 201, created.json()
    team_id = created.json()["id"]
    assert created.json()["members"] == []
    assert api.post("/api/v1/teams/", {"name": "Vision"}, format="json").json() == {
        "errors": {"name": ["There is already a team named Vision."]}
    }

    added = api.post(f"/api/v1/teams/{team_id}/members/", {"username": "owner"}, format="json")
    assert added.status_code == 200 and added.json()["members"] == ["owner"]
    api.post(f"/api/v1/teams/{team_id}/members/", {"username": "outsider"}, format="json")
    removed = api.delete(f"/api/v1/teams/{team_id}/members/outsider/")
    assert removed.json()["members"] == ["owner"]

    renamed = api.patch(f"/api/v1/teams/{team_id}/", {"name": "perception"}, format="json")
    assert renamed.json()["name"] == "perception"
    assert api.delete(f"/api/v1/teams/{team_id}/").status_code == 204
    assert not Team.objects.filter(pk=team_id).exists()
    changes = AuditEvent.objects.filter(action=AuditEvent.Action.TEAM_CHANGED)
    assert [event.details["change"] for event in changes.order_by("id")] == [
        "created",
        "member added",
        "member added",
        "member removed",
        "renamed",
        "deleted",
    ]


def test_members_read_their_team_and_others_get_404(
    client_for: TokenClient, owner, teammate, outsider
):
    team = owner.teams.get()
    mine = client_for(teammate).get(f"/api/v1/teams/{team.pk}/")
    assert mine.status_code == 200
    assert mine.json()["members"] == ["owner", "teammate"]
    assert [t["name"] for t in client_for(teammate).get("/api/v1/teams/").json()] == ["vision"]
    stranger = client_for(outsider)
    assert stranger.get("/api/v1/teams/").json() == []
    for path in ("", "quota/"):
        assert stranger.get(f"/api/v1/teams/{team.pk}/{path}").status_code == 404
    # A change by someone who cannot see the team is a 404 too, never a hint.
    assert stranger.delete(f"/api/v1/teams/{team.pk}/").status_code == 404
    assert stranger.patch(f"/api/v1/teams/{team.pk}/quota/", {}, format="json").status_code == 404
    assert stranger.delete(f"/api/v1/teams/{team.pk}/members/owner/").status_code == 404


def test_members_may_not_change_their_team_or_create_one(client_for: TokenClient, owner, teammate):
    team = owner.teams.get()
    member = client_for(teammate)
    refusals: list[Any] = [
        member.post("/api/v1/teams/", {"name": "mine"}, format="json"),
        member.patch(f"/api/v1/teams/{team.pk}/", {"name": "ours"}, format="json"),
        member.delete(f"/api/v1/teams/{team.pk}/"),
        member.post(f"/api/v1/teams/{team.pk}/members/", {"username": "owner"}, format="json"),
        member.delete(f"/api/v1/teams/{team.pk}/members/owner/"),
        member.patch(f"/api/v1/teams/{team.pk}/quota/", {"max_gpus": 99}, format="json"),
        member.patch("/api/v1/users/teammate/quota/", {"max_gpus": 99}, format="json"),
    ]
    assert [response.status_code for response in refusals] == [403] * len(refusals)
    assert Team.objects.get().name == "vision"
    assert not Quota.objects.exists()


def test_admins_set_team_and_user_quotas_and_blanks_fall_back_to_the_defaults(
    client_for: TokenClient, admin_user, owner, teammate, outsider, settings
):
    settings.TRAINYARD_QUOTA_DEFAULTS = {**settings.TRAINYARD_QUOTA_DEFAULTS, "max_gpus": 4}
    team = owner.teams.get()
    api = client_for(admin_user)
    set_team = api.patch(
        f"/api/v1/teams/{team.pk}/quota/",
        {"max_gpus": 16, "max_gpu_hours": 500.5, "min_priority": -5, "max_priority": 10},
        format="json",
    )
    assert set_team.status_code == 200, set_team.json()
    body = set_team.json()
    assert body["limits"]["max_gpus"] == 16 and body["limits"]["max_cpu_slots"] is None
    assert body["effective"]["max_gpu_hours"] == 500.5
    set_user = api.patch("/api/v1/users/owner/quota/", {"max_queued_jobs": 3}, format="json")
    assert set_user.json()["effective"] == {
        "max_gpus": 4,  # the cluster default
        "max_cpu_slots": None,
        "max_running_jobs": None,
        "max_queued_jobs": 3,
        "max_gpu_hours": None,
        "max_cpu_slot_hours": None,
        "min_priority": None,
        "max_priority": None,
    }
    # Fields left out keep their value; null blanks one.
    api.patch(f"/api/v1/teams/{team.pk}/quota/", {"max_gpus": None}, format="json")
    assert Quota.objects.get(team=team).max_gpus is None
    assert Quota.objects.get(team=team).max_gpu_hours == 500.5
    inverted = api.patch(f"/api/v1/teams/{team.pk}/quota/", {"min_priority": 20}, format="json")
    assert inverted.status_code == 400
    assert "min_priority" in inverted.json()["errors"]
    # A user reads their own quota; another user's is not there for them.
    assert (
        client_for(owner).get("/api/v1/users/owner/quota/").json()["limits"]["max_queued_jobs"] == 3
    )
    assert client_for(outsider).get("/api/v1/users/owner/quota/").status_code == 404
    assert AuditEvent.objects.filter(action=AuditEvent.Action.QUOTA_SET).count() == 3


def test_a_submit_outside_the_priority_range_or_over_the_queued_limit_is_a_400(
    client_for: TokenClient, owner, job_body, settings
):
    Quota.objects.create(user=owner, max_priority=5, max_queued_jobs=1)
    api = client_for(owner)
    too_high = api.post("/api/v1/jobs/", {**job_body, "priority": 6}, format="json")
    assert too_high.status_code == 400
    assert too_high.json() == {
        "errors": {"priority": ["Priority 6 is outside the allowed range: -100 to 5."]}
    }
    first = api.post("/api/v1/jobs/", {**job_body, "team": "vision"}, format="json")
    assert first.status_code == 400
    assert list(first.json()["errors"]) == ["team"]
    queued = api.post("/api/v1/jobs/", job_body, format="json")
    assert queued.status_code == 201
    assert queued.json()["usage"] == {"gpu_hours": 0.0, "cpu_slot_hours": 0.0}
    over = api.post("/api/v1/jobs/", job_body, format="json")
    assert over.status_code == 400
    assert over.json()["errors"]["__all__"] == [
        "Your quota allows 1 queued jobs and 1 are queued: wait for one to start, or cancel one."
    ]


def test_a_job_in_the_api_names_its_team(client_for: TokenClient, owner, teammate, job_body):
    make_team("aardvarks", owner)
    created = client_for(owner).post("/api/v1/jobs/", {**job_body, "team": "vision"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["team"] == "vision"
