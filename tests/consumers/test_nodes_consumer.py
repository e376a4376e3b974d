"""`/ws/nodes/`: node health for admins only."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import User

from portal.cluster.events import node_health_changed
from portal.cluster.models import Node
from tests.consumers.support import close_code, open_socket, session_headers
from tests.factories import make_node

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("isolated_channel_layer"),
]


def test_it_closes_a_non_admin_socket_with_4403(owner: User) -> None:
    make_node("gpu-a")
    assert async_to_sync(close_code)("/ws/nodes/", session_headers(owner)) == 4403


def test_it_closes_an_anonymous_socket_with_4401() -> None:
    assert async_to_sync(close_code)("/ws/nodes/", session_headers(None)) == 4401


def test_an_admin_gets_every_node_then_live_health(admin_user: User) -> None:
    make_node("gpu-a", health={"cpu_percent": 10.0})
    make_node("gpu-b", is_draining=True, state=Node.State.OFFLINE)
    headers = session_headers(admin_user)

    def heartbeat() -> None:
        node = Node.objects.get(name="gpu-a")
        node.health = {"cpu_percent": 80.0}
        node.save(update_fields=["health"])
        node_health_changed(node)

    async def scenario() -> None:
        socket = await open_socket("/ws/nodes/", headers)
        try:
            first = await socket.receive_json_from(timeout=5)
            second = await socket.receive_json_from(timeout=5)
            assert first == {
                "type": "health",
                "node": "gpu-a",
                "state": "online",
                "status": "online",
                "is_draining": False,
                "health": {"cpu_percent": 10.0},
            }
            assert (second["node"], second["state"], second["is_draining"]) == (
                "gpu-b",
                "offline",
                True,
            )
            await sync_to_async(heartbeat)()
            live = await socket.receive_json_from(timeout=5)
            assert (live["type"], live["node"], live["health"]) == (
                "health",
                "gpu-a",
                {"cpu_percent": 80.0},
            )
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()
