"""The jobs REST API: submit, list, read, cancel, and page through metrics and logs.

Each view parses its input, calls one service or selector, and answers. Another user's job
answers 404 (from `job_get_visible`), never 403, so ids reveal nothing.
"""

from __future__ import annotations

from typing import Any

import pydantic
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.authentication import TokenScopePermission, authenticated_user
from portal.jobs import selectors, services, specs
from portal.jobs.models import Job
from portal.jobs.preview import job_preview
from portal.jobs.schemas import JobRequest, dotted_errors
from portal.jobs.serializers import (
    CheckpointSerializer,
    DryRunQuerySerializer,
    JobListQuerySerializer,
    JobSerializer,
    MetricPointSerializer,
    MetricsPageSerializer,
    MetricsQuerySerializer,
    PlanPreviewSerializer,
)
from portal.jobs.throttling import SubmitRateThrottle
from portal.lib.drf import (
    BoundedJSONParser,
    ErrorsSerializer,
    django_errors,
    parse_data,
    request_invalid,
)

API_PERMISSIONS = [IsAuthenticated, TokenScopePermission]
NOT_FOUND = OpenApiResponse(description="No such job, or not one you can see.")


def parse_query(serializer_class: type[serializers.Serializer[Any]], request: Request) -> Any:
    return parse_data(serializer_class, request.query_params)


def copy_arguments(data: dict[str, Any]) -> dict[str, Any]:
    """`copy_from` and the overrides of a "run again with changes" body."""
    overrides = dict(data)
    source = overrides.pop("copy_from")
    if isinstance(source, bool) or not isinstance(source, int):
        raise request_invalid({"copy_from": ["Give the id of a job to copy, as a number."]})
    return {"source_id": source, "overrides": overrides}


class JobListCreateApi(generics.ListAPIView[Job]):
    permission_classes = API_PERMISSIONS
    parser_classes = [BoundedJSONParser]
    # Submissions only (POST); listing is not limited.
    throttle_classes = [SubmitRateThrottle]
    serializer_class = JobSerializer

    def get_queryset(self) -> QuerySet[Job]:
        query = parse_query(JobListQuerySerializer, self.request)
        jobs = selectors.jobs_visible_to(self.request.user)
        return JobSerializer.eager(selectors.jobs_filtered(jobs, **query))

    @extend_schema(
        summary="List the jobs you can see",
        parameters=[JobListQuerySerializer],
        responses={200: JobSerializer(many=True), 400: ErrorsSerializer},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Submit a job, or preview its plan",
        parameters=[
            OpenApiParameter(
                "dry_run",
                bool,
                description="Check the request as a submit does and answer what the scheduler "
                "would do with it now (start, or wait behind how many, for which limit, until "
                "when), storing nothing: a 200 with the plan preview.",
            )
        ],
        description="The body is a job request; it is queued, and placed when capacity allows. "
        "Numbers must be JSON numbers: strings are not converted. `hyperparameters` is checked "
        "against the chosen model's architecture, and the model is built for the dataset's "
        "shape on a control worker first (a dry run): a shape it cannot take is a 400 on "
        "`hyperparameters`, and no worker answering in time is a 503 (nothing was queued).\n\n"
        "**Run again with changes**: a body with `copy_from: <job id>` (a job you can see; "
        "404 otherwise) submits a copy of that job's stored spec with the rest of the body "
        "deep-merged over it (objects merge key by key; anything else replaces), so "
        '`{"copy_from": 7, "training": {"epochs": 5}}` changes only the epochs.',
        request=JobRequest,
        responses={
            201: JobSerializer,
            200: PlanPreviewSerializer,
            400: ErrorsSerializer,
            413: ErrorsSerializer,
            429: OpenApiResponse(description="Too many submissions; wait `Retry-After` seconds."),
            503: ErrorsSerializer,
        },
    )
    def post(self, request: Request) -> Response:
        try:
            data = request.data  # parses here, so malformed JSON gets the usual 400 shape
        except exceptions.ParseError as exc:
            raise request_invalid({"__all__": [str(exc.detail)]}) from exc
        user = authenticated_user(request)
        try:
            if isinstance(data, dict) and "copy_from" in data:
                # Run again with changes: the source's stored spec, the body over it.
                arguments = copy_arguments(data)
                source = selectors.job_get_visible(user=user, job_id=arguments["source_id"])
                job_request = specs.request_from_spec(source.spec, arguments["overrides"])
            else:
                # Strict: a script that sends "0.01" for a float has a bug worth hearing about.
                try:
                    job_request = JobRequest.model_validate(data, strict=True)
                except pydantic.ValidationError as exc:
                    raise request_invalid(dotted_errors(exc)) from exc
            if parse_query(DryRunQuerySerializer, request)["dry_run"]:
                preview = job_preview(user=user, request=job_request)
                return Response(PlanPreviewSerializer(preview).data)
            job = services.job_submit(user=user, request=job_request)
        except DjangoValidationError as exc:
            raise request_invalid(django_errors(exc)) from exc
        except services.DryRunUnavailable as exc:
            return Response(
                {"errors": {"__all__": [str(exc)]}}, status=status.HTTP_503_SERVICE_UNAVAILABLE
            )
        JobSerializer.eager_one(job)
        body = JobSerializer(job, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)


class JobDetailApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(summary="Read a job", responses={200: JobSerializer, 404: NOT_FOUND})
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.job_get_visible(user=request.user, job_id=job_id)
        JobSerializer.eager_one(job)
        return Response(JobSerializer(job, context={"request": request}).data)


class JobCancelApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Cancel a job",
        description="Accepted: a queued job is cancelled at once; a running one moves to "
        "`cancelling` until its nodes confirm. Cancelling a finished job changes nothing.",
        request=None,
        responses={202: JobSerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request, job_id: int) -> Response:
        job = selectors.job_get_visible(user=request.user, job_id=job_id)
        job = services.job_cancel(user=authenticated_user(request), job=job)
        JobSerializer.eager_one(job)
        body = JobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class JobMetricsApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Page through a job's metric points",
        description="Points in (attempt, seq) order after the cursor. Start with no cursor "
        "and pass `next` back until `has_more` is false; poll with the last `next` to follow "
        "a running job.",
        parameters=[MetricsQuerySerializer],
        responses={200: MetricsPageSerializer, 400: ErrorsSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, job_id: int) -> Response:
        query = parse_query(MetricsQuerySerializer, request)
        job = selectors.job_get_visible(user=request.user, job_id=job_id)
        limit = query["limit"]
        # One extra row says whether another page exists without a second query.
        points = list(
            selectors.metric_points_after(
                job=job,
                after_attempt=query["after_attempt"],
                after_seq=query["after_seq"],
                limit=limit + 1,
            )
        )
        has_more = len(points) > limit
        points = points[:limit]
        cursor = {"after_attempt": query["after_attempt"], "after_seq": query["after_seq"]}
        if points:
            cursor = {"after_attempt": points[-1].attempt_id, "after_seq": points[-1].seq}
        body = {
            "points": MetricPointSerializer(points, many=True).data,
            "next": cursor,
            "has_more": has_more,
        }
        return Response(body)


class JobCheckpointsApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="List a job's checkpoints",
        description="Every checkpoint its attempts reported, oldest first. `available` says "
        "whether the file is still kept (the newest `keep_last` and the best are).",
        responses={200: CheckpointSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.job_get_visible(user=request.user, job_id=job_id)
        checkpoints = selectors.job_checkpoints(job)
        return Response(CheckpointSerializer(checkpoints, many=True).data)


class JobCheckpointDownloadApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Download a checkpoint file",
        description="The file as the trainer wrote it (a PyTorch state; load it with "
        "`torch.load(..., weights_only=True)`).",
        responses={
            (200, "application/octet-stream"): OpenApiResponse(description="The file."),
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, job_id: int, checkpoint_id: int) -> FileResponse:
        job = selectors.job_get_visible(user=request.user, job_id=job_id)
        checkpoint = selectors.job_checkpoint_get(job=job, checkpoint_id=checkpoint_id)
        path = selectors.checkpoint_path(checkpoint)
        if path is None:
            raise Http404("That checkpoint's file is no longer kept.")
        filename = f"job-{job.pk}-{checkpoint.name.replace('/', '-')}"
        return FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=filename,
            content_type="application/octet-stream",
        )
