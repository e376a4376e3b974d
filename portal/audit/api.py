"""The audit log in the REST API, for admins: a bounded, paginated list, newest first."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from portal.audit.models import AuditEvent
from portal.audit.selectors import audit_events
from portal.audit.serializers import AuditEventSerializer


class AuditEventListApi(generics.ListAPIView[AuditEvent]):
    permission_classes = [IsAuthenticated, IsAdminUser]
    serializer_class = AuditEventSerializer

    @extend_schema(
        summary="List audit events, newest first (staff)",
        responses={
            200: AuditEventSerializer(many=True),
            403: OpenApiResponse(description="Only staff may read the audit log."),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return audit_events()
