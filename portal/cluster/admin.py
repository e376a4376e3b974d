"""Admin for nodes: read-only (heartbeats write them); draining is an action on the service."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.cluster.models import Node, NodeEvent, NodeSample
from portal.cluster.services import node_set_cordoned, node_set_draining
from portal.lib.admin import ReadOnlyAdmin


def _staff(request: HttpRequest) -> User | None:
    # The admin site admits only staff, so this is always the signed-in user.
    return request.user if isinstance(request.user, User) else None


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin[Node]):
    list_display = [
        "name",
        "state",
        "is_draining",
        "address",
        "status",
        "pool",
        "cpu_slots",
        "gpu_count",
        "gpu_model",
        "last_heartbeat_at",
        "registered_at",
    ]
    list_filter = ["state", "is_draining", "is_cordoned", "pool"]
    search_fields = ["name", "hostname", "address", "cordon_reason", "unhealthy_reason"]
    actions = ["drain", "undrain", "cordon", "uncordon"]

    def _set_draining(self, request: HttpRequest, nodes: QuerySet[Node], draining: bool) -> None:
        changed = [node for node in nodes if node.is_draining != draining]
        for node in changed:
            node_set_draining(node=node, draining=draining, actor=_staff(request), reason="admin")
        verb = "Draining" if draining else "Undrained"
        self.message_user(request, f"{verb} {len(changed)} node(s).", messages.SUCCESS)

    def _set_cordoned(self, request: HttpRequest, nodes: QuerySet[Node], cordoned: bool) -> None:
        changed = [node for node in nodes if node.is_cordoned != cordoned]
        for node in changed:
            node_set_cordoned(node=node, cordoned=cordoned, actor=_staff(request), reason="admin")
        verb = "Cordoned" if cordoned else "Uncordoned"
        self.message_user(request, f"{verb} {len(changed)} node(s).", messages.SUCCESS)

    @admin.action(description="Cordon selected nodes (out of service: they look broken)")
    def cordon(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        self._set_cordoned(request, queryset, True)

    @admin.action(description="Uncordon selected nodes (and forget their failures)")
    def uncordon(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        self._set_cordoned(request, queryset, False)

    @admin.action(description="Drain selected nodes (finish their work, take no new work)")
    def drain(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        self._set_draining(request, queryset, True)

    @admin.action(description="Undrain selected nodes")
    def undrain(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        self._set_draining(request, queryset, False)


@admin.register(NodeEvent)
class NodeEventAdmin(ReadOnlyAdmin[NodeEvent]):
    """Who drained, cordoned or brought back which node, and when: written by the services."""

    list_display = ["at", "node", "kind", "actor", "reason"]
    list_filter = ["kind", "node"]
    list_select_related = ["node", "actor"]
    search_fields = ["node__name", "reason"]
    date_hierarchy = "at"


@admin.register(NodeSample)
class NodeSampleAdmin(ReadOnlyAdmin[NodeSample]):
    """The health history behind jobs' timelines; ingest writes it, retention prunes it."""

    list_display = ["node", "at", "gpu", "utilization", "memory_used", "memory_total"]
    list_filter = ["node"]
    list_select_related = ["node"]
    date_hierarchy = "at"
    show_full_result_count = False
