"""Helpers for the control-plane tests: uniquely named nodes, submissions, attempt reports."""

from __future__ import annotations

import time
import uuid
from typing import Any

from asgiref.sync import async_to_sync
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


def listen(layer: Any, *groups: str) -> str:
    """A new channel on `layer` that has joined `groups`."""
    channel: str = async_to_sync(layer.new_channel)()
    for group in groups:
        async_to_sync(layer.group_add)(group, channel)
    return channel


def layer_receive(layer: Any, channel: str, count: int) -> list[Any]:
    """The next `count` messages on `channel`, read in one event loop (channels_redis keeps a
    receive buffer per loop: reading from several loops can hand a message out twice)."""

    async def read() -> list[Any]:
        return [await layer.receive(channel) for _ in range(count)]

    messages: list[Any] = async_to_sync(read)()
    return messages
