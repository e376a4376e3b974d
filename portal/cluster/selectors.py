"""Reads for the cluster: nodes and what their active attempts hold."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django.db.models import Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from portal.cluster.models import Node, NodeEvent

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


def schedulable_nodes() -> Q:
    """The nodes that may take new work: online, not draining, not cordoned, healthy
    (`Node.is_schedulable`, as a filter)."""
    return Q(state=Node.State.ONLINE, is_draining=False, is_cordoned=False, unhealthy_reason="")


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


class PoolCapacity(TypedDict):
    name: str
    nodes: int  # that may take new work now
    gpus: int
    gpus_free: int
    cpu_slots: int
    cpu_slots_free: int
    gpu_models: list[str]


def pools_with_capacity() -> list[PoolCapacity]:
    """Every pool with what its schedulable nodes offer and have free now (the scheduler's
    count), for the submit form and the API: where a job could start, and how big."""
    pools: dict[str, PoolCapacity] = {}
    for node in nodes_with_usage():
        pool = pools.setdefault(
            node.pool,
            {
                "name": node.pool,
                "nodes": 0,
                "gpus": 0,
                "gpus_free": 0,
                "cpu_slots": 0,
                "cpu_slots_free": 0,
                "gpu_models": [],
            },
        )
        if not node.is_schedulable:
            continue
        pool["nodes"] += 1
        pool["gpus"] += node.gpu_count
        pool["gpus_free"] += max(0, node.gpu_count - node.gpus_in_use)
        pool["cpu_slots"] += node.cpu_slots
        pool["cpu_slots_free"] += max(0, node.cpu_slots - node.slots_in_use)
        if node.gpu_model and node.gpu_model not in pool["gpu_models"]:
            pool["gpu_models"].append(node.gpu_model)
    return sorted(pools.values(), key=lambda pool: pool["name"])


def nodes_with_recent_events(limit: int = 5) -> QuerySet[NodeWithUsage]:
    """`nodes_with_usage()`, each with `recent_events`: its latest `limit` availability changes,
    newest first, with who made them (one more query for all nodes)."""
    latest = NodeEvent.objects.select_related("actor").order_by("-at", "-id")
    return nodes_with_usage().prefetch_related(
        Prefetch("events", queryset=latest[:limit], to_attr="recent_events")
    )
