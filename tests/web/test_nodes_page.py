"""The nodes page and draining: admins only; anyone else finds nothing there."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tests.factories import make_node

GIB = 1024**3


def test_the_nodes_page_is_not_found_for_a_non_admin(client: Client, owner: User) -> None:
    make_node("cpu-a")
    client.force_login(owner)

    assert client.get(reverse("cluster:nodes")).status_code == 404
    # Nor is the link to it offered.
    assert reverse("cluster:nodes").encode() not in client.get(reverse("jobs:list")).content


def test_a_non_admin_cannot_drain_a_node(client: Client, owner: User) -> None:
    node = make_node("cpu-a")
    client.force_login(owner)

    response = client.post(
        reverse("cluster:drain", kwargs={"node_id": node.pk}), {"draining": "true"}
    )

    assert response.status_code == 404
    node.refresh_from_db()
    assert node.is_draining is False


def test_an_admin_sees_each_nodes_health_and_gpus(client: Client, admin_user: User) -> None:
    make_node("cpu-a", cpu_slots=2)
    make_node(
        "gpu-a",
        cpu_slots=16,
        gpu_count=1,
        health={
            "cpu_percent": 41.5,
            "memory_used": 8 * GIB,
            "memory_total": 32 * GIB,
            "disk_used": 100 * GIB,
            "disk_total": 400 * GIB,
            "gpus": [
                {
                    "index": 0,
                    "name": "Test GPU 80GB",
                    "utilization": 93.0,
                    "memory_used": 40 * GIB,
                    "memory_total": 80 * GIB,
                    "temperature": 71.0,
                    "power": 350.0,
                }
            ],
        },
    )
    client.force_login(admin_user)

    response = client.get(reverse("cluster:nodes"))

    assert response.status_code == 200
    content = response.content.decode()
    assert 'data-node-name="cpu-a"' in content
    assert "0 / 2 used" in content
    assert "Test GPU 80GB" in content
    assert "71 °C" in content
    assert "8.0\xa0GB / 32.0\xa0GB" in content  # filesizeformat keeps number and unit together
    assert "42%" in content


def test_an_admin_drains_and_undrains_a_node(client: Client, admin_user: User) -> None:
    node = make_node("cpu-a")
    client.force_login(admin_user)
    url = reverse("cluster:drain", kwargs={"node_id": node.pk})

    response = client.post(url, {"draining": "true"})
    assert response.status_code == 302
    node.refresh_from_db()
    assert node.is_draining is True
    assert b'data-testid="undrain-node"' in client.get(reverse("cluster:nodes")).content

    client.post(url, {"draining": "false"})
    node.refresh_from_db()
    assert node.is_draining is False
