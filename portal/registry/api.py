"""The model registry's REST API: register a job's best checkpoint, list and read versions,
download their files, and ask for predictions.

Another user's version answers 404 on every route (from `model_version_get_visible`).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.authentication import TokenScopePermission, authenticated_user
from portal.jobs.selectors import job_get_visible
from portal.lib.calls import WorkerUnavailable
from portal.lib.drf import (
    BoundedJSONParser,
    ErrorsSerializer,
    django_errors,
    parse_data,
    request_invalid,
)
from portal.registry import selectors, services
from portal.registry.models import ModelVersion
from portal.registry.predict import PredictionRefused, model_version_predict
from portal.registry.serializers import (
    ModelVersionSerializer,
    PredictBodySerializer,
    PredictionsSerializer,
    RegisterSerializer,
)

API_PERMISSIONS = [IsAuthenticated, TokenScopePermission]
NOT_FOUND = OpenApiResponse(description="No such model version, or not one you can see.")


class PredictUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "No prediction worker answered in time."
    default_code = "predict_unavailable"


def _body(request: Request) -> Any:
    try:
        return request.data
    except exceptions.ParseError as exc:
        raise request_invalid({"__all__": [str(exc.detail)]}) from exc


class ModelVersionListCreateApi(generics.ListAPIView[ModelVersion]):
    permission_classes = API_PERMISSIONS
    parser_classes = [BoundedJSONParser]
    serializer_class = ModelVersionSerializer

    def get_queryset(self) -> QuerySet[ModelVersion]:
        return selectors.model_versions_visible_to(self.request.user).order_by("-created_at", "-id")

    @extend_schema(summary="List the model versions you can see")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Register a succeeded job's best checkpoint as a model version",
        description="The next version of `name` (yours), from the export the trainer wrote "
        "when the job succeeded. A job that has not succeeded, or has no export yet, is "
        "refused with a 400 saying so.",
        request=RegisterSerializer,
        responses={201: ModelVersionSerializer, 400: ErrorsSerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request) -> Response:
        body = parse_data(RegisterSerializer, _body(request))
        job = job_get_visible(user=request.user, job_id=body["job"])
        try:
            version = services.model_version_register(
                user=authenticated_user(request), job=job, name=body["name"]
            )
        except DjangoValidationError as exc:
            raise request_invalid(django_errors(exc)) from exc
        version = selectors.model_version_get_visible(user=request.user, version_id=version.pk)
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class ModelVersionDetailApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Read a model version and its lineage",
        responses={200: ModelVersionSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, version_id: int) -> Response:
        version = selectors.model_version_get_visible(user=request.user, version_id=version_id)
        return Response(ModelVersionSerializer(version).data)


class ModelVersionFileApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Download a model version's safetensors weights or TorchScript program",
        description="Streamed. Compare the bytes with the version's `files.<kind>.sha256`.",
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, version_id: int, kind: str) -> FileResponse:
        version = selectors.model_version_get_visible(user=request.user, version_id=version_id)
        path, filename = selectors.model_version_file(version, kind)
        response = FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=filename,
            content_type="application/octet-stream",
        )
        return response


class ModelVersionPredictApi(APIView):
    permission_classes = API_PERMISSIONS
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        summary="Predict with a model version",
        description="At most 1000 rows per request. The dataset version's preprocessing is "
        "applied to the rows as it was in training; a `predict` worker answers. 400: rows "
        "the preprocessing refuses (the message names the row and column); 503: no predict "
        "worker answered in time.",
        request=PredictBodySerializer,
        responses={
            200: PredictionsSerializer,
            400: ErrorsSerializer,
            404: NOT_FOUND,
            413: ErrorsSerializer,
            503: OpenApiResponse(description="No predict worker answered in time."),
        },
    )
    def post(self, request: Request, version_id: int) -> Response:
        version = selectors.model_version_get_visible(user=request.user, version_id=version_id)
        body = parse_data(PredictBodySerializer, _body(request))
        try:
            predictions = model_version_predict(version=version, rows=body["rows"])
        except PredictionRefused as exc:
            raise request_invalid({"rows": [str(exc)]}) from exc
        except WorkerUnavailable as exc:
            raise PredictUnavailable(
                f"No prediction worker answered ({exc}); is the predict process running? "
                "Try again shortly."
            ) from exc
        return Response({"predictions": predictions})
