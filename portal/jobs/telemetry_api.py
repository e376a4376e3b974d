"""REST views of a job's logs and per-rank figures: thin, over `portal.jobs.telemetry`.

- `GET /api/v1/jobs/<id>/logs/?after=<cursor>&rank=<r>&q=<text>&limit=<n>`: a page of lines
  after a `(attempt, node_rank, seq)` cursor, with `next.after` to pass back and `truncated`;
- `GET /api/v1/jobs/<id>/logs/download/?rank=<r>&q=<text>`: the whole log as text, streamed;
- `GET /api/v1/jobs/<id>/ranks/?since=<iso>&until=<iso>&limit=<n>`: per-rank samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.jobs import selectors
from portal.jobs.api import API_PERMISSIONS, NOT_FOUND, parse_query
from portal.jobs.models import LogLine, RankSample
from portal.jobs.telemetry import (
    LogCursor,
    LogFilter,
    log_line_text,
    log_lines_after,
    log_lines_iter,
    log_truncated,
    rank_samples,
)
from portal.lib.drf import ErrorsSerializer

LOGS_PAGE_MAX = 1000
RANKS_PAGE_MAX = 10_000


class LogLineSerializer(serializers.ModelSerializer[LogLine]):
    attempt = serializers.IntegerField(
        source="attempt_id", read_only=True, help_text="Id of the attempt (`attempts[].id`)."
    )
    ts = serializers.DateTimeField(source="reported_at", read_only=True)

    class Meta:
        model = LogLine
        fields = ["attempt", "node_rank", "seq", "rank", "local_rank", "stream", "line", "ts"]
        read_only_fields = fields


class LogCursorField(serializers.CharField):
    def to_internal_value(self, data: Any) -> LogCursor:  # type: ignore[override]
        # The parsed cursor, not its text: DRF's CharField is typed to return str.
        text = super().to_internal_value(data)
        try:
            return LogCursor.parse(text)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class LogsFilterSerializer(serializers.Serializer[Any]):
    rank = serializers.IntegerField(
        min_value=0, max_value=2**31 - 1, required=False, help_text="Only this rank's lines."
    )
    q = serializers.CharField(
        max_length=200, required=False, default="", help_text="Only lines containing this text."
    )


class LogsQuerySerializer(LogsFilterSerializer):
    after = LogCursorField(
        required=False,
        allow_blank=True,
        default="",
        max_length=40_000,
        help_text="The `next.after` of the previous page: `<attempt>.<node_rank>.<seq>` per "
        "node share, comma-separated. Empty: from the beginning.",
    )
    limit = serializers.IntegerField(min_value=1, max_value=LOGS_PAGE_MAX, default=LOGS_PAGE_MAX)


class LogsNextSerializer(serializers.Serializer[Any]):
    after = serializers.CharField()


class LogsPageSerializer(serializers.Serializer[Any]):
    lines = LogLineSerializer(many=True)
    next = LogsNextSerializer(help_text="Pass `after` back to get the lines after this page.")
    has_more = serializers.BooleanField()
    truncated = serializers.BooleanField(
        help_text="The job's log reached its cap (TRAINYARD_LOG_MAX_BYTES_PER_JOB): later "
        "output was not stored."
    )


def _filter(query: dict[str, Any]) -> LogFilter:
    return LogFilter(rank=query.get("rank"), search=query.get("q") or "")


class JobLogsApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Page through a job's log lines",
        description="Every rank's lines after the cursor, by attempt, node and seq. A node's "
        "lines stop at the first one not stored yet, so paging on with `next.after` never "
        "skips a line.",
        parameters=[LogsQuerySerializer],
        responses={200: LogsPageSerializer, 400: ErrorsSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, job_id: int) -> Response:
        query = parse_query(LogsQuerySerializer, request)
        job = selectors.job_get_visible(user=request.user, job_id=job_id)
        after = query["after"] or LogCursor()
        lines, following, more = log_lines_after(
            job=job, cursor=after, limit=query["limit"], where=_filter(query)
        )
        body = {
            "lines": LogLineSerializer(lines, many=True).data,
            "next": {"after": following.text()},
            "has_more": more,
            "truncated": log_truncated(job),
        }
        return Response(body)


class JobLogDownloadApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Download a job's log",
        description="Every stored line as text, one per line, `[attempt A node N rank R "
        "stream] text`, streamed (a long log is never held in memory).",
        parameters=[LogsFilterSerializer],
        responses={
            (200, "text/plain"): OpenApiResponse(description="The log."),
            400: ErrorsSerializer,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, job_id: int) -> StreamingHttpResponse:
        query = parse_query(LogsFilterSerializer, request)
        job = selectors.job_get_visible(user=request.user, job_id=job_id)
        where = _filter(query)
        truncated = log_truncated(job)

        def text() -> Iterator[str]:
            for line in log_lines_iter(job=job, where=where):
                yield log_line_text(line)
            if truncated:
                yield "[trainyard] this log reached the job's cap; later output was not stored\n"

        response = StreamingHttpResponse(text(), content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="job-{job.pk}.log"'
        return response


class RankSampleSerializer(serializers.ModelSerializer[RankSample]):
    attempt = serializers.IntegerField(source="attempt_id", read_only=True)
    ts = serializers.DateTimeField(source="reported_at", read_only=True)

    class Meta:
        model = RankSample
        fields = [
            "attempt",
            "node_rank",
            "rank",
            "local_rank",
            "step",
            "steps",
            "step_time_s",
            "samples_per_s",
            "gpu_memory_used",
            "ts",
        ]
        read_only_fields = fields


class RanksQuerySerializer(serializers.Serializer[Any]):
    since = serializers.DateTimeField(required=False, help_text="Samples from this time on.")
    until = serializers.DateTimeField(required=False, help_text="Samples before this time.")
    limit = serializers.IntegerField(min_value=1, max_value=RANKS_PAGE_MAX, default=RANKS_PAGE_MAX)


class JobRankSamplesApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="A job's per-rank figures",
        description="Each rank's mean step time, samples per second and GPU memory over about "
        "a second of its steps (TRAINYARD_RANK_STATS_S), oldest first.",
        parameters=[RanksQuerySerializer],
        responses={200: RankSampleSerializer(many=True), 400: ErrorsSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, job_id: int) -> Response:
        query = parse_query(RanksQuerySerializer, request)
        job = selectors.job_get_visible(user=request.user, job_id=job_id)
        samples = rank_samples(
            job=job, since=query.get("since"), until=query.get("until"), limit=query["limit"]
        )
        return Response(RankSampleSerializer(samples, many=True).data)
