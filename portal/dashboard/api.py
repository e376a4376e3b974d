"""The dashboard's figures for scripts: the cluster summary (exactly what the home page shows
the same user), and the utilisation and queue history behind its charts."""

from __future__ import annotations

import math
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.authentication import TokenScopePermission, authenticated_user
from portal.dashboard.selectors import (
    SERIES_MAX_HOURS,
    cluster_summary,
    queue_series,
    runs_timeline,
    series_bucket_s,
    utilisation_series,
)
from portal.lib.drf import ErrorsSerializer, parse_data

API_PERMISSIONS = [IsAuthenticated, TokenScopePermission]


class SeriesQuerySerializer(serializers.Serializer[Any]):
    hours = serializers.FloatField(
        required=False,
        default=24.0,
        min_value=0.1,
        max_value=SERIES_MAX_HOURS,
        help_text=f"How far back, in hours (at most {SERIES_MAX_HOURS}). Default: 24.",
    )

    def validate_hours(self, value: float) -> float:
        # NaN passes both bounds (every comparison with it is false).
        if not math.isfinite(value):
            raise serializers.ValidationError("A valid number is required.")
        return value


SUMMARY = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="`at` (seconds since the epoch); `pools` and `totals`: nodes online, GPUs "
    "and CPU slots (capacity, `*_in_use` held by jobs; `totals` adds `gpus_busy` and "
    "`cpu_slots_busy`, the measured use in GPUs' and slots' worth); `node_states`: nodes "
    "per status; `nodes_attention`: nodes not online (admins only, else empty); `queue`: "
    "jobs queued and active, and the median and p95 wait (seconds) of jobs started in the "
    "last `window_hours`; `mine`: your unfinished jobs with `epoch` of `epochs` and `eta_s`; "
    "`top_users` and `top_teams`: GPU- and slot-hours this week, or null unless "
    "`names_shown` (admins, or everyone when the admin allows it).",
)
SERIES = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="`hours`, `bucket_s` (seconds per point) and `points`, oldest first.",
)


class ClusterSummaryApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(summary="The cluster now, as the dashboard shows it", responses={200: SUMMARY})
    def get(self, request: Request) -> Response:
        return Response(cluster_summary(user=authenticated_user(request)))


class UtilisationApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="GPUs and CPU slots over time: capacity, allocated and used",
        description="Each point averages the cluster samples in its bucket: `gpus_total`, "
        "`gpus_allocated`, `gpus_used`, `cpu_slots_total`, `cpu_slots_allocated`, "
        "`cpu_slots_used`, `queued`, `running`.",
        parameters=[SeriesQuerySerializer],
        responses={200: SERIES, 400: ErrorsSerializer},
    )
    def get(self, request: Request) -> Response:
        hours = parse_data(SeriesQuerySerializer, request.query_params)["hours"]
        points = utilisation_series(hours=hours)
        return Response({"hours": hours, "bucket_s": series_bucket_s(hours), "points": points})


class QueueStatsApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="The queue over time: jobs started, their wait, the longest queue",
        description="Per bucket: `started` (jobs that started in it), `wait_median_s` and "
        "`wait_p95_s` (their wait from submission, null without starts), `queued_max`.",
        parameters=[SeriesQuerySerializer],
        responses={200: SERIES, 400: ErrorsSerializer},
    )
    def get(self, request: Request) -> Response:
        hours = parse_data(SeriesQuerySerializer, request.query_params)["hours"]
        points = queue_series(hours=hours)
        return Response({"hours": hours, "bucket_s": series_bucket_s(hours), "points": points})


class TimelineApi(APIView):
    permission_classes = [IsAuthenticated, IsAdminUser, TokenScopePermission]

    @extend_schema(
        summary="Job runs per node over time, for a Gantt chart (staff)",
        description='`nodes`: `[{"node", "runs": [{"job", "name", "owner", '
        '"state", "start", "end"}]}]`, each run a placement that held the node within '
        "the range (`end` null while it still does); nodes without runs are left out.",
        parameters=[SeriesQuerySerializer],
        responses={
            200: SERIES,
            400: ErrorsSerializer,
            403: OpenApiResponse(description="Only staff may see everyone's runs."),
        },
    )
    def get(self, request: Request) -> Response:
        hours = parse_data(SeriesQuerySerializer, request.query_params)["hours"]
        return Response({"hours": hours, "nodes": runs_timeline(hours=hours)})
