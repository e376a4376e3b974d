"""The teams pages, the usage page with its CSV export, and the admins' quotas page."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from django.test import Client
from django.utils import timezone

from portal.accounts.models import Quota, Team
from portal.jobs.models import Attempt, Job, Placement
from tests.factories import make_attempt, make_job, make_node, make_team


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _ran(owner, team, *, gpus: int, hours: float) -> Job:
    job = make_job(owner, team=team, state=Job.State.SUCCEEDED, gpus_per_node=gpus)
    attempt = make_attempt(job, nodes=[make_node(gpu_count=8)], state=Attempt.State.SUCCEEDED)
    now = timezone.now()
    Placement.objects.filter(attempt=attempt).update(
        gpus=gpus,
        slots=0,
        started_at=now - timedelta(hours=hours + 1),
        finished_at=now - timedelta(hours=1),
    )
    return job


def test_an_admin_creates_a_team_adds_a_member_and_sets_its_quota_from_the_pages(admin_user, owner):
    admin = _client(admin_user)
    created = admin.post("/account/teams/", {"name": "speech"})
    team = Team.objects.get(name="speech")
    assert created.status_code == 302 and created["Location"] == f"/account/teams/{team.pk}/"
    assert (
        admin.post(f"/account/teams/{team.pk}/members/", {"username": "owner"}).status_code == 302
    )
    assert list(team.members.values_list("username", flat=True)) == ["owner"]
    saved = admin.post(
        f"/account/teams/{team.pk}/quota/",
        {"max_gpus": "8", "max_queued_jobs": "20", "min_priority": "-10", "max_priority": "10"},
    )
    assert saved.status_code == 302
    quota = Quota.objects.get(team=team)
    assert (quota.max_gpus, quota.max_queued_jobs, quota.max_priority) == (8, 20, 10)
    inverted = admin.post(
        f"/account/teams/{team.pk}/quota/", {"min_priority": "5", "max_priority": "1"}
    )
    assert inverted.status_code == 400
    assert "The lowest priority cannot be above the highest." in inverted.content.decode()
    page = admin.get(f"/account/teams/{team.pk}/").content.decode()
    assert 'data-member="owner"' in page and 'data-testid="quota-form"' in page
    user_page = admin.post("/account/users/owner/quota/", {"max_gpus": "2"})
    assert user_page.status_code == 302 and Quota.objects.get(user=owner).max_gpus == 2
    assert admin.post(f"/account/teams/{team.pk}/members/owner/remove/").status_code == 302
    assert admin.post(f"/account/teams/{team.pk}/delete/").status_code == 302
    assert not Team.objects.filter(name="speech").exists()


def test_members_see_their_team_read_only_and_others_get_404(owner, teammate, outsider):
    team = owner.teams.get()
    page = _client(teammate).get(f"/account/teams/{team.pk}/")
    assert page.status_code == 200
    assert 'data-testid="quota-form"' not in page.content.decode()
    assert _client(teammate).post(f"/account/teams/{team.pk}/delete/").status_code == 404
    assert _client(outsider).get(f"/account/teams/{team.pk}/").status_code == 404
    assert _client(outsider).get("/account/users/owner/quota/").status_code == 404
    assert _client(outsider).post("/account/teams/", {"name": "mine"}).status_code == 404
    assert Team.objects.count() == 1


def test_the_usage_page_charts_and_lists_the_users_jobs(owner, teammate):
    team = owner.teams.get()
    job = _ran(owner, team, gpus=2, hours=3)
    _ran(teammate, team, gpus=4, hours=1)
    page = _client(owner).get("/usage/?days=7").content.decode()
    assert 'data-testid="chart-usage"' in page and 'id="usage-data"' in page
    assert f'data-job-id="{job.pk}"' in page
    assert 'data-testid="usage-gpu-hours">6.00<' in page
    ours = _client(owner).get("/usage/?days=7&team=vision").content.decode()
    assert 'data-testid="usage-gpu-hours">10.00<' in ours


def test_the_csv_export_streams_one_row_per_job_that_adds_up_to_the_total(
    owner, teammate, outsider
):
    team = owner.teams.get()
    jobs = [_ran(owner, team, gpus=2, hours=3), _ran(teammate, team, gpus=1, hours=2)]
    _ran(outsider, None, gpus=8, hours=5)
    response = _client(owner).get("/usage/export.csv?days=30&team=vision")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert sorted(int(row["job"]) for row in rows) == sorted(job.pk for job in jobs)
    assert sum(int(row["gpu_microseconds"]) for row in rows) == 8 * 3_600_000_000
    assert {row["team"] for row in rows} == {"vision"}
    # Someone else's usage is not exported to a user.
    assert _client(outsider).get("/usage/export.csv?team=vision").status_code == 404


def test_the_quotas_page_is_for_admins(admin_user, owner):
    Quota.objects.create(user=owner, max_gpus=4)
    _ran(owner, None, gpus=2, hours=1)
    page = _client(admin_user).get("/quotas/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-name="owner"' in html and "js/quotas.js" in html
    assert _client(owner).get("/quotas/").status_code == 404


def test_the_job_form_charges_the_team_chosen(owner, teammate, job_form_data):
    make_team("aardvarks", owner)
    page = _client(owner).get("/jobs/new/").content.decode()
    assert '<option value="vision">vision</option>' in page
    response = _client(owner).post("/jobs/new/", {**job_form_data, "team": "vision"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert str(Job.objects.get(owner=owner).team) == "vision"
