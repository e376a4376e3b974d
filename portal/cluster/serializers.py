"""How nodes look in the REST API (admins only)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.cluster.models import Node, NodeEvent


class NodeEventSerializer(serializers.ModelSerializer[NodeEvent]):
    actor = serializers.SerializerMethodField(help_text="Who made the change; null: Trainyard.")

    class Meta:
        model = NodeEvent
        fields = ["kind", "actor", "reason", "at"]
        read_only_fields = fields

    def get_actor(self, event: NodeEvent) -> str | None:
        return event.actor.get_username() if event.actor else None


class PoolSerializer(serializers.Serializer[dict[str, Any]]):
    """A pool and what its schedulable nodes offer and have free now."""

    name = serializers.CharField()
    nodes = serializers.IntegerField(help_text="Nodes that may take new work now.")
    gpus = serializers.IntegerField()
    gpus_free = serializers.IntegerField()
    cpu_slots = serializers.IntegerField()
    cpu_slots_free = serializers.IntegerField()
    gpu_models = serializers.ListField(child=serializers.CharField())


class NodeChangeSerializer(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=500, help_text="Why (kept in the history)."
    )


class NodeSerializer(serializers.ModelSerializer[Node]):
    is_schedulable = serializers.BooleanField(read_only=True)
    status = serializers.CharField(
        read_only=True, help_text="offline, cordoned, unhealthy, draining or online."
    )
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
            "status",
            "is_draining",
            "is_cordoned",
            "cordon_reason",
            "unhealthy_reason",
            "consecutive_failures",
            "is_schedulable",
            "pool",
            "labels",
            "gpu_model",
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
