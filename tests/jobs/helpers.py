"""Helpers for the control-plane tests: uniquely named nodes, submissions, attempt reports."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.contrib.auth.models import AbstractUser

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


def submit(user: AbstractUser, dataset: Dataset, model: ModelArchitecture, **request: Any) -> Job:
    return job_submit(
        user=user,
        request=JobRequest.model_validate({"dataset": dataset.pk, "model": model.pk, **request}),
    )


def cpu_request(nodes: int = 1, procs: int = 1, **request: Any) -> dict[str, Any]:
    return {"resources": {"nodes": nodes, "procs_per_node": procs}, **request}


def placements(attempt: Attempt) -> list[Placement]:
    return list(attempt.placements.select_related("node").order_by("node_rank"))


def started(placement: Placement) -> AttemptStartedEntry:
    return {
        "type": "attempt.started",
        "job": placement.attempt.job_id,
        "attempt": placement.attempt_id,
        "node": placement.node.name,
        "node_rank": placement.node_rank,
        "ts": time.time(),
    }


def exited(
    placement: Placement, exit_code: int = 0, *, cancelled: bool = False, reason: str = ""
) -> AttemptExitedEntry:
    return {
        "type": "attempt.exited",
        "job": placement.attempt.job_id,
        "attempt": placement.attempt_id,
        "node": placement.node.name,
        "node_rank": placement.node_rank,
        "exit_code": exit_code,
        "cancelled": cancelled,
        "reason": reason,
        "ts": time.time(),
    }
