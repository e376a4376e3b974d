"""The cluster summary: capacity and use now, node states, the queue, a user's own jobs, and
who may see whose names."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.cluster.models import Node
from portal.dashboard.selectors import TOP_CACHE_KEY, cluster_summary, usage_by
from portal.jobs.models import Attempt, Job, MetricPoint, Placement
from tests.factories import make_attempt, make_job, make_node, make_team, make_user

pytestmark = pytest.mark.django_db


def running_on(
    owner: User, nodes: list[Node], *, slots: int = 2, gpus: int = 0, **fields: Any
) -> Job:
    job = make_job(
        owner,
        state=Job.State.RUNNING,
        nodes=len(nodes),
        procs_per_node=slots,
        gpus_per_node=gpus,
        started_at=timezone.now(),
        **fields,
    )
    attempt = make_attempt(job, nodes=nodes)
    Placement.objects.filter(attempt=attempt).update(gpus=gpus, started_at=job.started_at)
    return job


def test_in_use_counts_what_placements_hold_on_online_nodes_per_pool(owner: User) -> None:
    a = make_node("a", cpu_slots=4, health={"cpu_percent": 50.0, "gpus": []})
    b = make_node(
        "b",
        cpu_slots=4,
        gpu_count=2,
        pool="gpu",
        health={"cpu_percent": 25.0, "gpus": [{"utilization": 80.0}, {"utilization": 40.0}]},
    )
    make_node("gone", cpu_slots=8, state=Node.State.OFFLINE)
    running_on(owner, [a], slots=3)
    running_on(owner, [b], slots=1, gpus=2)
    # A finished placement and a lost attempt's hold nothing.
    ended = running_on(owner, [a], slots=1)
    Placement.objects.filter(attempt__job=ended).update(finished_at=timezone.now())
    lost = running_on(owner, [b], slots=1)
    Attempt.objects.filter(job=lost).update(state=Attempt.State.LOST)

    summary = cluster_summary(user=owner)

    pools = {pool["name"]: pool for pool in summary["pools"]}
    assert pools["default"]["cpu_slots"] == 4 and pools["default"]["cpu_slots_in_use"] == 3
    assert pools["gpu"]["gpus"] == 2 and pools["gpu"]["gpus_in_use"] == 2
    totals = summary["totals"]
    # A GPU job holds a slot per GPU (one process each).
    assert (totals["cpu_slots"], totals["cpu_slots_in_use"]) == (8, 5)
    assert (totals["gpus"], totals["gpus_in_use"]) == (2, 2)
    assert totals["nodes"] == 2
    # Measured: half of a's 4 slots and a quarter of b's, and 0.8 + 0.4 GPUs.
    assert totals["cpu_slots_busy"] == 3.0
    assert totals["gpus_busy"] == 1.2


def test_node_states_count_every_status(owner: User, admin_user: User) -> None:
    make_node("ok")
    make_node("dr", is_draining=True)
    make_node("co", is_cordoned=True)
    make_node("un", unhealthy_reason="ECC errors")
    make_node("off", state=Node.State.OFFLINE)

    summary = cluster_summary(user=owner)

    assert summary["node_states"] == {
        "online": 1,
        "draining": 1,
        "cordoned": 1,
        "unhealthy": 1,
        "offline": 1,
    }
    # Which nodes need a look is for admins (the nodes page is theirs).
    assert summary["nodes_attention"] == []
    attention = {
        n["name"]: n["status"] for n in cluster_summary(user=admin_user)["nodes_attention"]
    }
    assert attention == {"dr": "draining", "co": "cordoned", "un": "unhealthy", "off": "offline"}


def test_queue_counts_and_wait_percentiles_of_recent_starts(owner: User) -> None:
    now = timezone.now()
    for _ in range(3):
        make_job(owner)
    make_job(owner, state=Job.State.RUNNING)
    # Waits of 10, 20, ..., 100 seconds among the jobs started in the last day.
    for n in range(1, 11):
        make_job(
            owner,
            state=Job.State.SUCCEEDED,
            created_at=now - timedelta(minutes=30, seconds=10 * n),
            started_at=now - timedelta(minutes=30),
        )
    # A start two days ago is outside the window.
    make_job(
        owner,
        state=Job.State.SUCCEEDED,
        created_at=now - timedelta(days=2, hours=5),
        started_at=now - timedelta(days=2),
    )

    queue = cluster_summary(user=owner)["queue"]

    assert (queue["queued"], queue["active"], queue["started"]) == (3, 1, 10)
    assert queue["wait_median_s"] == pytest.approx(55.0)
    assert queue["wait_p95_s"] == pytest.approx(95.5)


def test_mine_lists_my_unfinished_jobs_with_epoch_and_eta(owner: User, teammate: User) -> None:
    node = make_node()
    job = running_on(owner, [node], slots=1)
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=100))
    job.spec["training"]["epochs"] = 10
    Job.objects.filter(pk=job.pk).update(spec=job.spec)
    attempt = job.attempts.get()
    for seq, epoch in enumerate([1, 2, 2]):
        MetricPoint.objects.create(
            job=job,
            attempt=attempt,
            seq=seq,
            split="val",
            step=seq,
            epoch=epoch,
            loss=1.0,
            reported_at=timezone.now(),
        )
    waiting = make_job(owner)
    make_job(owner, state=Job.State.SUCCEEDED)
    make_job(teammate, team=teammate.teams.get())

    mine = {row["id"]: row for row in cluster_summary(user=owner)["mine"]}

    assert set(mine) == {job.pk, waiting.pk}
    assert (mine[job.pk]["epoch"], mine[job.pk]["epochs"]) == (2, 10)
    # 100 s for 2 epochs: 400 s for the 8 left.
    assert mine[job.pk]["eta_s"] == pytest.approx(400, abs=5)
    assert mine[waiting.pk]["epoch"] is None and mine[waiting.pk]["eta_s"] is None
    assert mine[job.pk]["url"] == f"/jobs/{job.pk}/"


def test_a_normal_user_sees_totals_without_other_users_names(
    owner: User, outsider: User, admin_user: User, settings: Any
) -> None:
    node = make_node(cpu_slots=4)
    running_on(outsider, [node], slots=2, team=make_team("secret-team", outsider))

    mine = cluster_summary(user=owner)
    admins = cluster_summary(user=admin_user)

    assert mine["totals"]["cpu_slots_in_use"] == 2
    assert mine["names_shown"] is False and mine["top_users"] is None and mine["top_teams"] is None
    assert "outsider" not in repr(mine) and "secret-team" not in repr(mine)
    assert admins["names_shown"] is True
    assert [row["name"] for row in admins["top_users"] or []] == ["outsider"]
    assert [row["name"] for row in admins["top_teams"] or []] == ["secret-team"]

    settings.TRAINYARD_DASHBOARD_SHOW_USERS = True
    allowed = cluster_summary(user=owner)
    assert [row["name"] for row in allowed["top_users"] or []] == ["outsider"]


def test_usage_counts_gpu_and_slot_hours_within_the_window(owner: User) -> None:
    now = timezone.now()
    other = make_user("heavy")
    node = make_node(cpu_slots=8, gpu_count=8)
    # heavy: 4 GPUs for the last 3 hours (still running); owner: 1 GPU for 2 hours, long ago
    # partly: it ran from 9 days ago to 6 days ago, so one day of it is in a week's window.
    heavy = running_on(other, [node], slots=4, gpus=4)
    Placement.objects.filter(attempt__job=heavy).update(started_at=now - timedelta(hours=3))
    old = running_on(owner, [node], slots=1, gpus=1)
    Placement.objects.filter(attempt__job=old).update(
        started_at=now - timedelta(days=9), finished_at=now - timedelta(days=6)
    )

    rows = usage_by(
        "attempt__job__owner__username", since=now - timedelta(days=7), now=now, limit=5
    )

    assert [row["name"] for row in rows] == ["owner", "heavy"]
    assert rows[0]["gpu_hours"] == pytest.approx(24.0, abs=0.01)
    assert rows[1]["gpu_hours"] == pytest.approx(12.0, abs=0.01)
    assert rows[1]["slot_hours"] == pytest.approx(12.0, abs=0.01)


def test_the_summary_costs_the_same_queries_for_few_and_many(owner: User) -> None:
    admin = make_user("boss", is_staff=True)
    node = make_node()
    running_on(owner, [node], slots=1)
    with CaptureQueriesContext(connection) as few:
        cluster_summary(user=admin)
        cluster_summary(user=owner)
    for n in range(15):
        extra = make_node(f"extra-{n}")
        running_on(make_user(f"u{n}"), [extra], slots=1)
        running_on(owner, [extra], slots=1)
    cache.delete(TOP_CACHE_KEY)  # counted afresh, as the first time
    with CaptureQueriesContext(connection) as many:
        cluster_summary(user=admin)
        cluster_summary(user=owner)
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_top_users_are_computed_once_a_minute_not_per_summary(owner: User) -> None:
    admin = make_user("boss", is_staff=True)
    running_on(owner, [make_node()], slots=1)
    first = cluster_summary(user=admin)
    running_on(make_user("newcomer"), [make_node()], slots=1)

    with CaptureQueriesContext(connection) as again:
        second = cluster_summary(user=admin)

    assert second["top_users"] == first["top_users"]
    assert not [q for q in again.captured_queries if "SUM((" in q["sql"]]
    cache.delete(TOP_CACHE_KEY)
    names = {row["name"] for row in cluster_summary(user=admin)["top_users"] or []}
    assert names == {"owner", "newcomer"}
