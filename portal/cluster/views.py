"""The nodes page (admins only): health, capacity in use, and draining."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts.selectors import user_is_admin
from portal.cluster.models import Node
from portal.cluster.selectors import nodes_with_usage
from portal.cluster.services import node_set_draining


def _require_staff(request: HttpRequest) -> None:
    # Like another user's job: a page you may not see does not exist for you.
    if not user_is_admin(request.user):
        raise Http404


def _percent(used: Any, total: Any) -> float | None:
    try:
        return round(100.0 * float(used) / float(total), 1) if total else None
    except (TypeError, ValueError):
        return None


def node_card(node: Node) -> dict[str, Any]:
    """What a node's card shows, from its row and its latest heartbeat."""
    health: dict[str, Any] = node.health if isinstance(node.health, dict) else {}
    gpus = [
        dict(gpu, memory_percent=_percent(gpu.get("memory_used"), gpu.get("memory_total")))
        for gpu in health.get("gpus") or []
    ]
    return {
        "node": node,
        "slots_used": getattr(node, "slots_in_use", None),
        "gpus_used": getattr(node, "gpus_in_use", None),
        "health": health,
        "cpu_percent": health.get("cpu_percent"),
        "memory_percent": _percent(health.get("memory_used"), health.get("memory_total")),
        "disk_percent": _percent(health.get("disk_used"), health.get("disk_total")),
        "gpus": gpus,
    }


@require_http_methods(["GET"])
def node_list(request: HttpRequest) -> HttpResponse:
    _require_staff(request)
    cards = [node_card(node) for node in nodes_with_usage()]
    return render(request, "cluster/nodes.html", {"cards": cards})


@require_POST
def node_drain(request: HttpRequest, node_id: int) -> HttpResponseRedirect:
    _require_staff(request)
    node = get_object_or_404(Node, pk=node_id)
    draining = request.POST.get("draining") == "true"
    user = request.user
    node_set_draining(node=node, draining=draining, by=user if isinstance(user, User) else None)
    verb = "Draining" if draining else "Undrained"
    messages.success(request, f"{verb} {node.name}.")
    return redirect("cluster:nodes")
