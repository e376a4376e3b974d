"""The nodes REST API, for admins: list nodes with their usage, drain and undrain them.

Every route here answers 403 to anyone who is not staff, before any lookup, so a node's name
reveals nothing: nodes are the cluster's, not another user's objects to hide behind a 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.authentication import TokenScopePermission
from portal.cluster import selectors, services
from portal.cluster.models import Node
from portal.cluster.serializers import NodeSerializer

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


class _NodeDrainingApi(APIView):
    permission_classes = STAFF_PERMISSIONS
    draining: bool

    def post(self, request: Request, name: str) -> Response:
        node = get_object_or_404(Node, name=name)
        user = request.user
        by = user if isinstance(user, User) else None
        services.node_set_draining(node=node, draining=self.draining, by=by)
        # Answer with the node as the list shows it, capacity in use included.
        return Response(NodeSerializer(selectors.nodes_with_usage().get(pk=node.pk)).data)


@extend_schema(
    summary="Drain a node (staff): it takes no new work; running jobs finish",
    request=None,
    responses={200: NodeSerializer, 403: STAFF_ONLY, 404: OpenApiResponse(description="No node.")},
)
class NodeDrainApi(_NodeDrainingApi):
    draining = True


@extend_schema(
    summary="Undrain a node (staff): it takes new work again",
    request=None,
    responses={200: NodeSerializer, 403: STAFF_ONLY, 404: OpenApiResponse(description="No node.")},
)
class NodeUndrainApi(_NodeDrainingApi):
    draining = False
