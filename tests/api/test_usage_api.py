"""Usage in the API and the quotas overview: who may see whose, and the figures."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.accounts.models import Quota
from portal.jobs.models import Attempt, Job, Placement
from tests.api.conftest import TokenClient
from tests.factories import make_attempt, make_job, make_node


def _ran(owner, team, *, gpus: int, hours: float) -> Job:
    job = make_job(owner, team=team, state=Job.State.RUNNING, gpus_per_node=gpus)
    attempt = make_attempt(job, nodes=[make_node(gpu_count=8)], state=Attempt.State.RUNNING)
    now = timezone.now()
    Placement.objects.filter(attempt=attempt).update(
        gpus=gpus, slots=0, started_at=now - timedelta(hours=hours)
    )
    return job


def test_usage_is_yours_your_teams_or_for_admins_anyones(
    client_for: TokenClient, owner, teammate, outsider, admin_user
):
    team = owner.teams.get()
    job = _ran(owner, team, gpus=2, hours=3)
    _ran(teammate, team, gpus=1, hours=1)
    mine = client_for(owner).get("/api/v1/usage/?days=1").json()
    assert mine["label"] == "owner"
    assert 5.99 < mine["totals"]["gpu_hours"] < 6.01
    assert len(mine["series"]) == 48
    assert 5.99 < sum(point["gpu_hours"] for point in mine["series"]) < 6.01
    ours = client_for(owner).get("/api/v1/usage/?days=7&team=vision").json()
    assert 6.99 < ours["totals"]["gpu_hours"] < 7.01
    assert client_for(outsider).get("/api/v1/usage/?team=vision").status_code == 404
    assert client_for(outsider).get("/api/v1/usage/?user=owner").status_code == 404
    assert client_for(admin_user).get("/api/v1/usage/?user=owner").json()["label"] == "owner"
    # The job's own figure, live.
    detail = client_for(owner).get(f"/api/v1/jobs/{job.pk}/").json()
    assert 5.99 < detail["usage"]["gpu_hours"] < 6.01


def test_the_quotas_overview_is_for_admins_and_shows_use_against_each_limit(
    client_for: TokenClient, owner, teammate, admin_user
):
    team = owner.teams.get()
    Quota.objects.create(team=team, max_gpus=8, max_gpu_hours=100)
    _ran(owner, team, gpus=2, hours=3)
    make_job(owner, team=team)  # queued
    assert client_for(owner).get("/api/v1/quotas/").status_code == 403
    overview = client_for(admin_user).get("/api/v1/quotas/").json()
    vision = next(row for row in overview["teams"] if row["name"] == "vision")
    limits = {item["limit"]: item for item in vision["limits"]}
    assert limits["max_gpus"] == {"limit": "max_gpus", "allowed": 8, "used": 2}
    assert limits["max_queued_jobs"]["used"] == 1 and limits["max_queued_jobs"]["allowed"] is None
    assert 5.99 < limits["max_gpu_hours"]["used"] < 6.01
    owner_row = next(row for row in overview["users"] if row["name"] == "owner")
    assert {item["limit"]: item["used"] for item in owner_row["limits"]}["max_running_jobs"] == 1
