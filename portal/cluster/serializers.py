"""How nodes look in the REST API (admins only)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.cluster.models import Node


class NodeSerializer(serializers.ModelSerializer[Node]):
    is_schedulable = serializers.BooleanField(read_only=True)
    # Annotated by `nodes_with_usage()`: capacity held by active placements.
    slots_in_use = serializers.IntegerField(read_only=True)
    gpus_in_use = serializers.IntegerField(read_only=True)
    health = serializers.SerializerMethodField(
        help_text="The latest heartbeat as the node sent it: CPU, memory, disk and per-GPU "
        "figures (workers.messages.HealthEntry)."
    )

    class Meta:
        model = Node
        fields = [
            "id",
            "name",
            "hostname",
            "address",
            "state",
            "is_draining",
            "is_schedulable",
            "cpu_slots",
            "gpu_count",
            "slots_in_use",
            "gpus_in_use",
            "health",
            "registered_at",
            "last_heartbeat_at",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_health(self, node: Node) -> dict[str, Any]:
        return dict(node.health) if isinstance(node.health, dict) else {}
