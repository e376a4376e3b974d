"""`/ws/nodes/`: the admins' live view of node health.

On connect an admin gets one `health` message per node from PostgreSQL, then every heartbeat
the ingest process stores. A heartbeat is a whole snapshot, so a message lost by the channel
layer is simply replaced by the next one; there is no cursor to keep.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from portal.accounts.selectors import user_is_admin
from portal.cluster.events import NODES_GROUP, NodeHealthEvent, node_health_event
from portal.cluster.models import Node
from portal.lib.websocket import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHENTICATED,
    JsonFiniteConsumer,
    refuse,
    scope_user,
)


def _health_message(event: NodeHealthEvent) -> dict[str, Any]:
    return {**event, "type": "health"}


class NodesConsumer(JsonFiniteConsumer):
    """Admins only: `{"type": "health", "node", "state", "is_draining", "health"}`."""

    joined = False

    async def connect(self) -> None:
        user = scope_user(self.scope)
        if user is None or not user_is_admin(user):
            await refuse(self, CLOSE_UNAUTHENTICATED if user is None else CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(NODES_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        for message in await self._current():
            await self.send_json(message)

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(NODES_GROUP, self.channel_name)

    async def node_health(self, event: NodeHealthEvent) -> None:
        await self.send_json(_health_message(event))

    @database_sync_to_async
    def _current(self) -> list[dict[str, Any]]:
        return [_health_message(node_health_event(node)) for node in Node.objects.order_by("name")]
