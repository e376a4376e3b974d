"""`/ws/nodes/`: the admins' live view of node health.

On connect an admin gets one `health` message per node from PostgreSQL, then every heartbeat
the ingest process stores. A heartbeat is a whole snapshot, so a message lost by the channel
layer is simply replaced by the next one; there is no cursor to keep.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from portal.accounts.selectors import user_is_admin
from portal.cluster.selectors import nodes_with_usage
from portal.jobs.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, authenticated_user
from portal.jobs.events import NODES_GROUP, NodeHealthEvent


def _health_message(event: NodeHealthEvent | dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "health",
        "node": event["node"],
        "state": event["state"],
        "is_draining": event["is_draining"],
        "health": event["health"],
    }


class NodesConsumer(AsyncJsonWebsocketConsumer):
    """Admins only: `{"type": "health", "node", "state", "is_draining", "health"}`."""

    joined = False

    async def connect(self) -> None:
        user = authenticated_user(self.scope)
        if user is None or not user_is_admin(user):
            # Accept first so the close code reaches the page instead of a bare 1006.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED if user is None else CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(NODES_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        for message in await self._current():
            await self.send_json(message)

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(NODES_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        return None

    async def node_health(self, event: NodeHealthEvent) -> None:
        await self.send_json(_health_message(event))

    @database_sync_to_async
    def _current(self) -> list[dict[str, Any]]:
        return [
            _health_message(
                {
                    "node": node.name,
                    "state": str(node.state),
                    "is_draining": node.is_draining,
                    "health": dict(node.health),
                }
            )
            for node in nodes_with_usage()
        ]
