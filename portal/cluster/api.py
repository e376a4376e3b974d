"""The nodes REST API, for admins: list nodes with their usage, drain and undrain them.

Every route here answers 403 to anyone who is not staff, before any lookup, so a node's name
reveals nothing: nodes are the cluster's, not another user's objects to hide behind a 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.authentication import TokenScopePermission, authenticated_user
from portal.cluster import selectors, services
from portal.cluster.models import Node, NodeEvent
from portal.cluster.serializers import (
    NodeChangeSerializer,
    NodeEventSerializer,
    NodeSerializer,
    PoolSerializer,
)
from portal.lib.drf import ErrorsSerializer, parse_data

STAFF_PERMISSIONS = [IsAuthenticated, IsAdminUser, TokenScopePermission]
STAFF_ONLY = OpenApiResponse(description="Only staff may see or change nodes.")


class NodeListApi(generics.ListAPIView[Node]):
    permission_classes = STAFF_PERMISSIONS
    serializer_class = NodeSerializer

    @extend_schema(
        summary="List nodes with their usage (staff)",
        responses={200: NodeSerializer(many=True), 403: STAFF_ONLY},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Node]:
        return selectors.nodes_with_usage()


class _NodeChangeApi(APIView):
    """POST with an optional `{"reason": "..."}`: the change is recorded with who made it."""

    permission_classes = STAFF_PERMISSIONS
    change: str
    value: bool

    def post(self, request: Request, name: str) -> Response:
        reason = parse_data(NodeChangeSerializer, request.data or {}).get("reason", "")
        node = get_object_or_404(Node, name=name)
        if self.change == "draining":
            services.node_set_draining(
                node=node, draining=self.value, actor=authenticated_user(request), reason=reason
            )
        else:
            services.node_set_cordoned(
                node=node, cordoned=self.value, actor=authenticated_user(request), reason=reason
            )
        # Answer with the node as the list shows it, capacity in use included.
        return Response(NodeSerializer(selectors.nodes_with_usage().get(pk=node.pk)).data)


_CHANGED = {
    200: NodeSerializer,
    400: ErrorsSerializer,
    403: STAFF_ONLY,
    404: OpenApiResponse(description="No node."),
}


@extend_schema(
    summary="Drain a node (staff): it takes no new work; running jobs finish",
    request=NodeChangeSerializer,
    responses=_CHANGED,
)
class NodeDrainApi(_NodeChangeApi):
    change, value = "draining", True


@extend_schema(
    summary="Undrain a node (staff): it takes new work again",
    request=NodeChangeSerializer,
    responses=_CHANGED,
)
class NodeUndrainApi(_NodeChangeApi):
    change, value = "draining", False


@extend_schema(
    summary="Cordon a node (staff): out of service, it looks broken; running jobs finish",
    request=NodeChangeSerializer,
    responses=_CHANGED,
)
class NodeCordonApi(_NodeChangeApi):
    change, value = "cordoned", True


@extend_schema(
    summary="Uncordon a node (staff): back in service, its run of failures forgotten",
    request=NodeChangeSerializer,
    responses=_CHANGED,
)
class NodeUncordonApi(_NodeChangeApi):
    change, value = "cordoned", False


class NodeEventListApi(generics.ListAPIView[NodeEvent]):
    permission_classes = STAFF_PERMISSIONS
    serializer_class = NodeEventSerializer

    @extend_schema(
        summary="A node's availability history, newest first (staff)",
        responses={
            200: NodeEventSerializer(many=True),
            400: ErrorsSerializer,
            403: STAFF_ONLY,
            404: OpenApiResponse(description="No node."),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[NodeEvent]:
        node = get_object_or_404(Node, name=self.kwargs["name"])
        return node.events.select_related("actor").order_by("-at", "-id")


class PoolListApi(APIView):
    """Pools for everyone who may submit: where a job could run, and how much is free."""

    @extend_schema(
        summary="List pools with their capacity and what is free now",
        responses={200: PoolSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        pools = selectors.pools_with_capacity()
        return Response(PoolSerializer(pools, many=True).data)  # type: ignore[arg-type]
