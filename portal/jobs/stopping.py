"""Telling nodes to stop their shares of an attempt: one message, `CANCEL_ATTEMPT_TASK(attempt_id,
stop)`, for a cancel and a preemption alike (`workers.messages.StopRequest` says which, and the
grace the ranks get to checkpoint before SIGKILL). Sent after the commit; messages are hints,
repeated by whoever still finds the attempt running."""

from __future__ import annotations

from typing import Literal

from django.conf import settings

from portal.cluster.dispatch import node_task_send_on_commit
from portal.jobs.models import Attempt, Placement
from workers.messages import CANCEL_ATTEMPT_TASK, StopRequest


def stop_request(kind: Literal["cancel", "preempt"], *, detail: str = "") -> StopRequest:
    """A cancel gets `TRAINYARD_CANCEL_GRACE_S`, a preemption `TRAINYARD_PREEMPT_GRACE_S`."""
    grace = (
        settings.TRAINYARD_PREEMPT_GRACE_S
        if kind == "preempt"
        else settings.TRAINYARD_CANCEL_GRACE_S
    )
    return StopRequest(kind=kind, grace_s=float(grace), detail=detail)


def attempt_stop_on_node(*, attempt_id: int, node_name: str, stop: StopRequest) -> None:
    """Tell one node to stop its share of the attempt, after the commit."""
    node_task_send_on_commit(
        task=CANCEL_ATTEMPT_TASK, args=[attempt_id, stop.to_json()], node_name=node_name
    )


def attempt_stop_unfinished(
    attempt: Attempt, *, stop: StopRequest | None = None, except_rank: int | None = None
) -> None:
    """Tell every node still running a share of `attempt` to stop it (default: a cancel)."""
    stop = stop or stop_request("cancel")
    names = (
        Placement.objects.filter(attempt=attempt, finished_at__isnull=True)
        .exclude(node_rank=except_rank if except_rank is not None else -1)
        .values_list("node__name", flat=True)
    )
    for name in names:
        attempt_stop_on_node(attempt_id=attempt.pk, node_name=name, stop=stop)
