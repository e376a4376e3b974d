"""Reads for the cluster: nodes and what their active attempts hold."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce

from portal.cluster.models import Node
from portal.jobs.selectors import placements_holding_capacity

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


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
