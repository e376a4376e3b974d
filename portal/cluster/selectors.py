"""Reads for the cluster: nodes and what their active attempts hold."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from portal.cluster.models import Node

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


# The state of a lost attempt (`portal.jobs.models.Attempt.State.LOST`): the jobs app, above
# this one, writes placements; the rule of what holds a node's capacity is the cluster's.
ATTEMPT_LOST = "lost"


def placements_holding_capacity(prefix: str = "") -> Q:
    """The placements whose capacity is taken: every one its node has not finished, unless
    the attempt was lost (a lost node may never report; its survivors were told to stop).

    The scheduler and the nodes page count capacity with this one rule. A placement outlives
    its attempt: when one node's failure ends the attempt, the other nodes' ranks still run
    until they report their exit, and their capacity stays taken till then. `prefix` reaches
    placements from another model (`"placements__"` from `Node`).
    """
    return Q(**{f"{prefix}finished_at__isnull": True}) & ~Q(
        **{f"{prefix}attempt__state": ATTEMPT_LOST}
    )


class NodeUsage(TypedDict):
    slots_in_use: int
    gpus_in_use: int


if TYPE_CHECKING:
    NodeWithUsage = WithAnnotations[Node, NodeUsage]


def nodes_with_usage() -> QuerySet[NodeWithUsage]:
    """Every node, annotated with `slots_in_use` and `gpus_in_use`: what its placements hold
    (exactly the scheduler's view of the node), in one query."""
    held = placements_holding_capacity("placements__")
    return Node.objects.annotate(
        slots_in_use=Coalesce(Sum("placements__slots", filter=held), 0),
        gpus_in_use=Coalesce(Sum("placements__gpus", filter=held), 0),
    ).order_by("name")
