"""Helpers for the control-plane tests: uniquely named nodes, submissions, attempt reports."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

from django.contrib.auth.models import User

from portal.catalog.models import Dataset, ModelArchitecture
from portal.cluster.models import Node
from portal.jobs.models import Attempt, Job, Placement
from portal.jobs.schemas import JobRequest
from portal.jobs.services import job_submit
from tests.factories import make_node
from workers.messages import AttemptExitedEntry, AttemptStartedEntry


def node(**fields: Any) -> Node:
    """A schedulable node whose name (and so broker queue) no concurrent test run shares."""
    return make_node(f"ctl-{uuid.uuid4().hex[:10]}", **fields)


def submit(user: User, dataset: Dataset, model: ModelArchitecture, **request: Any) -> Job:
    return job_submit(
        user=user,
        request=JobRequest.model_validate({"dataset": dataset.pk, "model": model.pk, **request}),
    )


def cpu_request(nodes: int = 1, procs: int = 1, **request: Any) -> dict[str, Any]:
    return {"resources": {"nodes": nodes, "procs_per_node": procs}, **request}


def placements(attempt: Attempt) -> list[Placement]:
    return list(attempt.placements.select_related("node").order_by("node_rank"))


def started(placement: Placement) -> AttemptStartedEntry:
    return AttemptStartedEntry(
        job=placement.attempt.job_id,
        attempt=placement.attempt_id,
        node=placement.node.name,
        node_rank=placement.node_rank,
        ts=time.time(),
    )


def exited(
    placement: Placement,
    exit_code: int = 0,
    *,
    cancelled: bool = False,
    reason: str = "",
    retryable: bool = True,
) -> AttemptExitedEntry:
    return AttemptExitedEntry(
        job=placement.attempt.job_id,
        attempt=placement.attempt_id,
        node=placement.node.name,
        node_rank=placement.node_rank,
        exit_code=exit_code,
        cancelled=cancelled,
        reason=reason,
        retryable=retryable,
        ts=time.time(),
    )


class Listener:
    """A channel of `layer` that has joined some groups, read from one event loop of its own.

    A Redis pub/sub layer subscribes per event loop (each `async_to_sync` call runs a new one,
    whose subscriptions end with it), and the core layer buffers per loop, so joining and
    reading happen in one loop, on a thread, for the listener's whole life."""

    def __init__(self, layer: Any, groups: tuple[str, ...]) -> None:
        self.layer = layer
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.channel: str = self._run(self._join(groups))

    def _run(self, coroutine: Any, timeout: float = 15.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _join(self, groups: tuple[str, ...]) -> str:
        channel: str = await self.layer.new_channel()
        for group in groups:
            await self.layer.group_add(group, channel)
        # A message to itself comes back only once Redis has taken every subscription before it.
        await self.layer.send(channel, {"type": "listener.ready"})
        assert await self.layer.receive(channel) == {"type": "listener.ready"}
        return channel

    def receive(self, count: int) -> list[Any]:
        async def read() -> list[Any]:
            return [await self.layer.receive(self.channel) for _ in range(count)]

        messages: list[Any] = self._run(read())
        return messages

    def close(self) -> None:
        """Leave the groups, close the layer's connections of this loop, and the loop."""
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        # (The pub/sub layer flushes its connections of this loop when the loop closes; the
        # core layer needs telling.)
        self.loop.run_until_complete(self.layer.flush())
        self.loop.close()


# Closed by the `channel_layer` fixture when its test ends.
open_listeners: list[Listener] = []


def listen(layer: Any, *groups: str) -> Listener:
    """A new channel on `layer` that has joined `groups`, ready to receive."""
    listener = Listener(layer, groups)
    open_listeners.append(listener)
    return listener


def layer_receive(layer: Any, channel: Listener, count: int) -> list[Any]:
    """The next `count` messages `channel` receives (within 15 s)."""
    assert channel.layer is layer
    return channel.receive(count)
