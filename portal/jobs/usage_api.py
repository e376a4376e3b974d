"""Usage and the quotas overview in the REST API: `/api/v1/usage/` (yours, your teams', or
for admins anyone's; `?days=&user=&team=`) and `/api/v1/quotas/` (admins: every user's and
team's usage against each limit, which the quotas page refreshes)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.authentication import TokenScopePermission
from portal.accounts.selectors import user_is_admin
from portal.jobs.quotas import quotas_overview
from portal.jobs.usage import usage_scope
from portal.jobs.usage_views import usage_data, usage_days

USAGE_PARAMETERS = [
    OpenApiParameter("days", OpenApiTypes.INT, description="1, 7, 30 (default) or 90."),
    OpenApiParameter("user", OpenApiTypes.STR, description="A username (yours; admins: any)."),
    OpenApiParameter("team", OpenApiTypes.STR, description="A team name (yours; admins: any)."),
]


class UsageApi(APIView):
    permission_classes = [IsAuthenticated, TokenScopePermission]

    @extend_schema(
        summary="GPU-hours and CPU-slot-hours over a range, in total and per bucket",
        parameters=USAGE_PARAMETERS,
        responses={200: OpenApiTypes.OBJECT, 404: OpenApiResponse(description="No such scope.")},
    )
    def get(self, request: Request) -> Response:
        scope = usage_scope(
            user=request.user,  # type: ignore[arg-type]
            admin=user_is_admin(request.user),
            username=str(request.query_params.get("user", "")).strip(),
            team=str(request.query_params.get("team", "")).strip(),
        )
        days = usage_days(request.query_params.get("days"))
        body: dict[str, Any] = usage_data(scope, days)
        return Response(body)


class QuotaOverviewApi(APIView):
    permission_classes = [IsAuthenticated, IsAdminUser, TokenScopePermission]

    @extend_schema(
        summary="Every user's and team's usage against each limit (staff)",
        responses={200: OpenApiTypes.OBJECT, 403: OpenApiResponse(description="Staff only.")},
    )
    def get(self, request: Request) -> Response:
        return Response(quotas_overview())
