"""`/ws/dashboard/`: the dashboard's figures, pushed whenever the cluster changes.

On connect a user gets one `summary` message (`cluster_summary`, as they may see it), then
another after each `cluster.changed` event: a heartbeat, a job's state. Events carry nothing
and every summary is read whole from PostgreSQL, so a lost event costs only freshness until
the next one (heartbeats arrive every few seconds), and a burst of events (a thousand nodes'
heartbeats, a sweep's state changes) costs one read per PUSH_INTERVAL_S per socket.
"""

from __future__ import annotations

import asyncio
import time

from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser

from portal.cluster.events import CLUSTER_GROUP, ClusterChangedEvent
from portal.dashboard.selectors import ClusterSummary, cluster_summary
from portal.lib.websocket import CLOSE_UNAUTHENTICATED, JsonFiniteConsumer, refuse, scope_user

# The most often one socket reads and sends the summary.
PUSH_INTERVAL_S = 1.0


class DashboardConsumer(JsonFiniteConsumer):
    """`{"type": "summary", "summary": ClusterSummary}` on connect and after changes."""

    joined = False
    user: AbstractBaseUser
    _pending: asyncio.Task[None] | None = None
    _last_push = 0.0
    _dirty = False

    async def connect(self) -> None:
        user = scope_user(self.scope)
        if user is None:
            await refuse(self, CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        # Join before the first read: a change committed after it arrives as an event.
        await self.channel_layer.group_add(CLUSTER_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        await self._push()

    async def disconnect(self, code: int) -> None:
        if self._pending is not None:
            self._pending.cancel()
        if self.joined:
            await self.channel_layer.group_discard(CLUSTER_GROUP, self.channel_name)

    async def cluster_changed(self, event: ClusterChangedEvent) -> None:
        # Coalesce: one task pushes while changes keep coming; an event that arrives during a
        # read marks another read, so a change committed after a read began is never missed.
        self._dirty = True
        if self._pending is None or self._pending.done():
            self._pending = asyncio.ensure_future(self._push_while_dirty())

    async def _push_while_dirty(self) -> None:
        while self._dirty:
            wait = self._last_push + PUSH_INTERVAL_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty = False
            await self._push()

    async def _push(self) -> None:
        self._last_push = time.monotonic()
        summary = await self._summary()
        await self.send_json({"type": "summary", "summary": summary})

    @database_sync_to_async
    def _summary(self) -> ClusterSummary:
        return cluster_summary(user=self.user)
