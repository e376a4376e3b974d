"""The dashboard page and the API's cluster figures: the same summary for the same user, and
each user sees only what they may."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from portal.dashboard.models import ClusterSample
from portal.dashboard.services import cluster_sample_record
from portal.jobs.models import Job, Placement
from tests.api.conftest import TokenClient
from tests.dashboard.test_summary import running_on
from tests.factories import make_job, make_node, make_team

pytestmark = pytest.mark.django_db

# The page and the API read the clock separately; everything else must match.
CLOCK = "at"


def page_data(client: Client) -> dict[str, Any]:
    response = client.get("/")
    assert response.status_code == 200
    content = response.content.decode()
    start = content.index('<script id="dashboard-data" type="application/json">')
    body = content[start:].split(">", 1)[1].split("</script>", 1)[0]
    data: dict[str, Any] = json.loads(body)
    return data


def without_clock(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in summary.items() if key != CLOCK}


@pytest.mark.parametrize("persona", ["owner", "admin_user"])
def test_the_api_summary_is_what_the_page_shows(
    persona: str,
    request: pytest.FixtureRequest,
    client: Client,
    client_for: TokenClient,
    outsider: User,
) -> None:
    user: User = request.getfixturevalue(persona)
    a, b = make_node("a", cpu_slots=2), make_node("b", cpu_slots=2, is_draining=True)
    running_on(user, [a, b], slots=2)
    running_on(outsider, [a], slots=0)
    make_job(user)
    make_job(outsider)
    client.force_login(user)

    page = page_data(client)["summary"]
    api = client_for(user).get("/api/v1/cluster/summary/")

    assert api.status_code == 200
    assert without_clock(api.json()) == without_clock(page)
    assert page["totals"]["cpu_slots_in_use"] == 4
    assert page["queue"]["queued"] == 2
    assert [job["state"] for job in page["mine"]] == ["queued", "running"]


def test_a_normal_user_sees_no_one_elses_names_or_jobs_anywhere_on_the_dashboard(
    client: Client, client_for: TokenClient, owner: User, outsider: User
) -> None:
    node = make_node("n1", cpu_slots=4)
    running_on(
        outsider,
        [node],
        slots=2,
        name="outsiders-secret-run",
        team=make_team("skunkworks", outsider),
    )
    client.force_login(owner)

    page = client.get("/").content.decode()
    api = client_for(owner).get("/api/v1/cluster/summary/").content.decode()

    for text in (page, api):
        assert "outsider" not in text
        assert "skunkworks" not in text
    assert json.loads(api)["totals"]["cpu_slots_in_use"] == 2


def test_admins_see_the_top_users_and_the_nodes_that_need_a_look(
    client_for: TokenClient, admin_user: User, owner: User
) -> None:
    node = make_node("n1", cpu_slots=4, is_cordoned=True)
    running_on(owner, [node], slots=2)

    body = client_for(admin_user).get("/api/v1/cluster/summary/").json()

    assert [row["name"] for row in body["top_users"]] == ["owner"]
    assert body["nodes_attention"] == [{"name": "n1", "status": "cordoned", "pool": "default"}]


def test_the_dashboard_needs_a_login(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_sample_records_the_cluster_and_the_series_show_it(
    client_for: TokenClient, owner: User, settings: Any
) -> None:
    settings.TRAINYARD_SAMPLE_S = 60.0
    node = make_node(cpu_slots=4, health={"cpu_percent": 50.0})
    running_on(owner, [node], slots=3)
    make_job(owner)
    stale = ClusterSample.objects.create(at=timezone.now() - timedelta(days=60))

    sample = cluster_sample_record()

    assert (sample.cpu_slots_total, sample.cpu_slots_allocated) == (4, 3)
    assert sample.cpu_slots_used == 2.0
    assert (sample.queued, sample.running) == (1, 1)
    assert not ClusterSample.objects.filter(pk=stale.pk).exists()
    api = client_for(owner)
    util = api.get("/api/v1/cluster/utilisation/", {"hours": 6}).json()
    assert util["hours"] == 6 and util["bucket_s"] == 72
    [point] = util["points"]
    assert (point["cpu_slots_total"], point["cpu_slots_allocated"], point["queued"]) == (4, 3, 1)
    queue = api.get("/api/v1/cluster/queue/").json()
    assert [point["queued_max"] for point in queue["points"]] == [1]
    # A job that started an hour ago after waiting 30 s is in the queue series.
    make_job(
        owner,
        state=Job.State.SUCCEEDED,
        created_at=timezone.now() - timedelta(minutes=60, seconds=30),
        started_at=timezone.now() - timedelta(minutes=60),
    )
    waits = [p["wait_median_s"] for p in api.get("/api/v1/cluster/queue/").json()["points"]]
    assert 30.0 in [round(w) for w in waits if w is not None]


@pytest.mark.parametrize("hours", ["0", "-1", "10000", "soon", "nan", "NaN", "inf"])
def test_a_series_refuses_a_bad_range(client_for: TokenClient, owner: User, hours: str) -> None:
    response = client_for(owner).get("/api/v1/cluster/utilisation/", {"hours": hours})
    assert response.status_code == 400
    assert "hours" in response.json()["errors"]


def test_the_timeline_shows_admins_each_nodes_runs_and_refuses_everyone_else(
    client_for: TokenClient, admin_user: User, owner: User
) -> None:
    now = timezone.now()
    a, b = make_node("a"), make_node("b")
    make_node("idle")
    first = running_on(owner, [a], slots=1, name="first")
    Placement.objects.filter(attempt__job=first).update(
        started_at=now - timedelta(hours=3), finished_at=now - timedelta(hours=2)
    )
    Job.objects.filter(pk=first.pk).update(state=Job.State.SUCCEEDED)
    second = running_on(owner, [a, b], slots=1, name="second")
    Placement.objects.filter(attempt__job=second).update(started_at=now - timedelta(hours=1))
    old = running_on(owner, [b], slots=1, name="long-gone")
    Placement.objects.filter(attempt__job=old).update(
        started_at=now - timedelta(days=3), finished_at=now - timedelta(days=2)
    )

    body = client_for(admin_user).get("/api/v1/cluster/timeline/", {"hours": 6}).json()

    runs = {
        row["node"]: [(r["name"], r["state"], r["end"] is None) for r in row["runs"]]
        for row in body["nodes"]
    }
    assert runs == {
        "a": [("first", "succeeded", False), ("second", "running", True)],
        "b": [("second", "running", True)],
    }
    assert client_for(owner).get("/api/v1/cluster/timeline/").status_code == 403
