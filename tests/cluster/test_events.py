"""Node health on the channel layer: to the admins' nodes group, after the commit."""

from __future__ import annotations

from portal.cluster import events
from tests.jobs.helpers import layer_receive, listen, node


def test_node_health_goes_to_the_nodes_group(channel_layer, django_capture_on_commit_callbacks, db):
    worker = node(health={"cpu_percent": 12.5})
    channel = listen(channel_layer, events.NODES_GROUP)
    with django_capture_on_commit_callbacks(execute=True):
        events.node_health_changed(worker)
    assert layer_receive(channel_layer, channel, 1) == [
        {
            "type": "node.health",
            "node": worker.name,
            "state": "online",
            "status": "online",
            "is_draining": False,
            "health": {"cpu_percent": 12.5},
        }
    ]
