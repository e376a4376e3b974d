"""/api/v1/nodes/: staff list, drain and undrain nodes; everyone else gets 403."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from portal.cluster.models import Node
from portal.jobs.models import Job
from tests.api.conftest import TokenClient
from tests.factories import make_attempt, make_node


def test_an_admin_lists_nodes_with_usage(
    client_for: TokenClient, submit: object, admin_user: User, cpu_node: Node
) -> None:
    make_node("idle", cpu_slots=8)

    body = client_for(admin_user).get("/api/v1/nodes/").json()

    names = [node["name"] for node in body["results"]]
    assert names == sorted([cpu_node.name, "idle"])
    idle = next(node for node in body["results"] if node["name"] == "idle")
    assert idle["cpu_slots"] == 8
    assert idle["is_schedulable"] is True
    assert idle["state"] == "online"


def test_node_usage_counts_active_placements(
    client_for: TokenClient,
    submit: object,
    owner: User,
    admin_user: User,
    cpu_node: Node,
) -> None:
    job = Job.objects.get(pk=submit(owner))  # type: ignore[operator]
    make_attempt(job, nodes=[cpu_node])

    body = client_for(admin_user).get("/api/v1/nodes/").json()

    listed = next(node for node in body["results"] if node["name"] == cpu_node.name)
    assert listed["slots_in_use"] == 2
    assert listed["gpus_in_use"] == 0


def test_an_admin_drains_and_undrains_a_node(client_for: TokenClient, admin_user: User) -> None:
    node = make_node("n1")
    client = client_for(admin_user)

    drained = client.post("/api/v1/nodes/n1/drain/")
    node.refresh_from_db()
    assert drained.status_code == 200
    assert drained.json()["is_draining"] is True
    assert node.is_draining is True

    undrained = client.post("/api/v1/nodes/n1/undrain/")
    node.refresh_from_db()
    assert undrained.json()["is_draining"] is False
    assert node.is_draining is False


def test_draining_an_unknown_node_answers_404_to_an_admin(
    client_for: TokenClient, admin_user: User
) -> None:
    assert client_for(admin_user).post("/api/v1/nodes/nope/drain/").status_code == 404


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/nodes/"),
        ("post", "/api/v1/nodes/n1/drain/"),
        ("post", "/api/v1/nodes/n1/undrain/"),
        ("post", "/api/v1/nodes/n1/cordon/"),
        ("post", "/api/v1/nodes/n1/uncordon/"),
        ("get", "/api/v1/nodes/n1/events/"),
        ("post", "/api/v1/nodes/nope/drain/"),
    ],
)
def test_it_answers_403_to_a_non_staff_user(
    client_for: TokenClient, owner: User, method: str, url: str
) -> None:
    node = make_node("n1")

    response = getattr(client_for(owner), method)(url)

    assert response.status_code == 403
    node.refresh_from_db()
    assert (node.is_draining, node.is_cordoned) == (False, False)
    assert not node.events.exists()


def test_an_admin_cordons_and_uncordons_a_node_and_the_history_says_who(
    client_for: TokenClient, admin_user: User
) -> None:
    node = make_node("n1")
    client = client_for(admin_user)

    cordoned = client.post("/api/v1/nodes/n1/cordon/", {"reason": "fans loud"}, format="json")
    assert cordoned.status_code == 200
    body = cordoned.json()
    assert (body["is_cordoned"], body["status"], body["is_schedulable"]) == (
        True,
        "cordoned",
        False,
    )
    assert body["cordon_reason"] == "fans loud"

    client.post("/api/v1/nodes/n1/uncordon/")
    node.refresh_from_db()
    assert (node.is_cordoned, node.cordon_reason) == (False, "")
    history = client.get("/api/v1/nodes/n1/events/").json()["results"]
    assert [(e["kind"], e["actor"], e["reason"]) for e in history] == [
        ("uncordon", "admin", ""),
        ("cordon", "admin", "fans loud"),
    ]


def test_a_change_reason_is_bounded(client_for: TokenClient, admin_user: User) -> None:
    make_node("n1")
    response = client_for(admin_user).post(
        "/api/v1/nodes/n1/cordon/", {"reason": "x" * 501}, format="json"
    )
    assert response.status_code == 400


def test_everyone_sees_the_pools_and_what_is_free(
    client_for: TokenClient, submit: object, owner: User, cpu_node: Node
) -> None:
    make_node("big", cpu_slots=8, gpu_count=4, pool="gpu", gpu_model="NVIDIA H200")
    make_node("gone", cpu_slots=8, pool="gpu", state=Node.State.OFFLINE)
    job = Job.objects.get(pk=submit(owner))  # type: ignore[operator]
    make_attempt(job, nodes=[cpu_node])

    pools = client_for(owner).get("/api/v1/pools/").json()

    assert pools == [
        {
            "name": "default",
            "nodes": 1,
            "gpus": 0,
            "gpus_free": 0,
            "cpu_slots": 2,
            "cpu_slots_free": 0,
            "gpu_models": [],
        },
        {
            "name": "gpu",
            "nodes": 1,
            "gpus": 4,
            "gpus_free": 4,
            "cpu_slots": 8,
            "cpu_slots_free": 8,
            "gpu_models": ["NVIDIA H200"],
        },
    ]
