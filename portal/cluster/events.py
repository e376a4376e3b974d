"""Node health to the admins' nodes page, and word of a change to every dashboard, through
the channel layer after the commit."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from portal.cluster.models import Node
from portal.lib.realtime import send_on_commit

NODES_GROUP = "nodes"


class NodeHealthEvent(TypedDict):
    type: Literal["node.health"]
    node: str
    state: str
    status: str  # offline, cordoned, unhealthy, draining or online (`Node.status`)
    is_draining: bool
    health: dict[str, Any]  # the node's latest workers.messages.HealthEntry


def node_health_event(node: Node) -> NodeHealthEvent:
    """The event for `node` as the instance holds it now; the nodes socket sends the same
    shape (less the handler's `type`) for each node when a page connects."""
    return {
        "type": "node.health",
        "node": node.name,
        "state": str(node.state),
        "status": node.status,
        "is_draining": node.is_draining,
        "health": dict(node.health),
    }


# Everyone's dashboard: something that changes the cluster's figures happened (a heartbeat,
# a job's state). The event carries nothing; each dashboard socket reads the figures its
# user may see from PostgreSQL (`portal.dashboard.consumers`), so no one's data travels to
# a socket that may not show it.
CLUSTER_GROUP = "cluster"


class ClusterChangedEvent(TypedDict):
    type: Literal["cluster.changed"]


CLUSTER_CHANGED: ClusterChangedEvent = {"type": "cluster.changed"}


def node_health_changed(node: Node) -> None:
    send_on_commit([(NODES_GROUP, node_health_event(node)), (CLUSTER_GROUP, CLUSTER_CHANGED)])
