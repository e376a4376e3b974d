"""The REST API for long runs and the timeline: a job's downsampled series (what its charts
load and zoom with), every point as CSV (streamed), and its devices' health over time.

Thin views: parse the query, find the job (404 for one you cannot see), call one selector.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.jobs import selectors
from portal.jobs.api import API_PERMISSIONS, NOT_FOUND, parse_query
from portal.jobs.series import (
    EXPORT_FIELDS,
    MAX_BUCKETS,
    epoch_seconds,
    metric_points_export,
    metric_series,
)
from portal.jobs.timeline import job_timeline
from portal.lib.drf import ErrorsSerializer
from portal.lib.realtime import json_finite

# Seconds since the epoch that a datetime can hold, and then some.
EPOCH_MAX = 253_402_300_799.0


class RangeQuerySerializer(serializers.Serializer[Any]):
    start = serializers.FloatField(
        required=False, min_value=0.0, max_value=EPOCH_MAX, help_text="From (s since the epoch)."
    )
    end = serializers.FloatField(
        required=False, min_value=0.0, max_value=EPOCH_MAX, help_text="To (s since the epoch)."
    )


class SeriesQuerySerializer(RangeQuerySerializer):
    buckets = serializers.IntegerField(min_value=10, max_value=MAX_BUCKETS, default=MAX_BUCKETS)


def _range(query: dict[str, Any]) -> dict[str, Any]:
    return {
        key: epoch_seconds(query[key]) for key in ("start", "end") if query.get(key) is not None
    }


class JobSeriesApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="A job's loss and accuracy, downsampled for a chart",
        description="At most `buckets` + 1 rows between `start` and `end` (default: the whole "
        "job), each with the minimum and maximum of every split's loss and accuracy in it, so "
        "peaks survive. `cursor` is the newest point included: follow the job live from there "
        "(`/ws/jobs/<id>/?attempt=&seq=`). Full resolution: `metrics.csv`.",
        parameters=[SeriesQuerySerializer],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="docs/telemetry.md"),
            400: ErrorsSerializer,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, job_id: int) -> Response:
        query = parse_query(SeriesQuerySerializer, request)
        job = selectors.job_get_visible(user=request.user, job_id=job_id)
        series = metric_series(job=job, buckets=query["buckets"], **_range(query))
        # The buckets hold finite values only (the selector leaves NaN out of the extremes);
        # only the summary's last values may be NaN. Sparing the walk over thousands of rows
        # is a tenth of a first load.
        series["summary"] = json_finite(series["summary"])
        return Response(series)


class JobTimelineApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="The utilisation and memory of a job's GPUs (or CPUs) over time",
        description="From its nodes' heartbeat history: one series per device its attempts "
        "held, between each placement's start and end, at most 2,000 readings each (the "
        "highest in each bucket).",
        parameters=[RangeQuerySerializer],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="docs/telemetry.md"),
            400: ErrorsSerializer,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, job_id: int) -> Response:
        query = parse_query(RangeQuerySerializer, request)
        job = selectors.job_get_visible(user=request.user, job_id=job_id)
        return Response(json_finite(job_timeline(job=job, **_range(query))))


class _Echo:
    """A file whose `write` hands back the line, so `csv.writer` feeds a generator."""

    def write(self, value: str) -> str:
        return value


class JobMetricsCsvApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Every metric point of a job, as CSV",
        description="Full resolution, in (attempt, seq) order, streamed: memory stays flat "
        "whatever the length of the run.",
        responses={(200, "text/csv"): OpenApiTypes.STR, 404: NOT_FOUND},
    )
    def get(self, request: Request, job_id: int) -> StreamingHttpResponse:
        job = selectors.job_get_visible(user=request.user, job_id=job_id)
        writer = csv.writer(_Echo())

        def rows() -> Iterator[str]:
            yield writer.writerow(EXPORT_FIELDS)
            for row in metric_points_export(job=job):
                *head, reported_at = row
                yield writer.writerow([*head, reported_at.isoformat()])

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="job-{job.pk}-metrics.csv"'
        return response
