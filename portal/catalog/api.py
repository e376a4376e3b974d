"""The catalog REST API: upload, list, read and delete dataset versions; list architectures.

Another user's dataset answers 404 on every route (`dataset_get_visible`), never 403.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.authentication import TokenScopePermission, authenticated_user
from portal.catalog import selectors, services
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.serializers import (
    DatasetDetailSerializer,
    DatasetSerializer,
    DatasetUploadSerializer,
    ModelArchitectureSerializer,
)
from portal.catalog.uploads import DatasetUploadHandler, StoredUpload
from portal.lib.drf import ErrorsSerializer, RequestTooLarge, parse_data, request_invalid

API_PERMISSIONS = [IsAuthenticated, TokenScopePermission]
NOT_FOUND = OpenApiResponse(description="No such dataset, or not one you can see.")
DetailSerializer = inline_serializer(
    name="Detail", fields={"detail": serializers.CharField(help_text="Why.")}
)


class DatasetListQuerySerializer(serializers.Serializer[Any]):
    name = serializers.CharField(
        required=False, max_length=200, help_text="Only versions of this name."
    )
    state = serializers.ChoiceField(
        choices=Dataset.State.choices, required=False, help_text="Only versions in this state."
    )
    latest = serializers.BooleanField(
        default=False, help_text="Only the newest version of each name."
    )


def dataset_detail_body(dataset: Dataset, request: Request) -> dict[str, Any]:
    versions = selectors.dataset_versions(user=request.user, dataset=dataset)
    body: dict[str, Any] = DatasetDetailSerializer(
        dataset, context={"request": request, "versions": versions}
    ).data
    return body


def too_large_message() -> str:
    limit = settings.TRAINYARD_DATASET_MAX_BYTES
    shown = f" ({limit / 2**20:g} MiB)" if limit >= 2**20 else ""
    return f"The file is larger than the upload limit of {limit} bytes{shown}."


class DatasetListCreateApi(generics.ListAPIView[Dataset]):
    permission_classes = API_PERMISSIONS
    parser_classes = [MultiPartParser]
    serializer_class = DatasetSerializer
    upload: DatasetUploadHandler | None = None

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        # Before DRF authenticates: a session's CSRF check reads the form, and so parses the
        # body; the file must stream through our handler whoever parses first.
        if request.method == "POST":
            self.upload = DatasetUploadHandler(
                request, max_bytes=settings.TRAINYARD_DATASET_MAX_BYTES
            )
            request.upload_handlers = [self.upload]
        return super().initialize_request(request, *args, **kwargs)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        # Whatever the answer, an upload the catalog did not take leaves nothing stored.
        if self.upload is not None:
            self.upload.discard()
        return super().finalize_response(request, response, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Dataset]:
        query = parse_data(DatasetListQuerySerializer, self.request.query_params)
        visible = selectors.datasets_visible_to(self.request.user).select_related("owner", "team")
        return selectors.datasets_filtered(visible, **query)

    @extend_schema(
        summary="List the dataset versions you can see",
        parameters=[DatasetListQuerySerializer],
        responses={200: DatasetSerializer(many=True), 400: ErrorsSerializer},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Upload a dataset",
        description="A multipart form with the file and how to read it. The file is streamed "
        "to storage; the answer is the new version in state `uploaded`, and validation runs "
        "in the background (poll the dataset until it is `ready` or `invalid`). Uploading "
        "under a name you already have makes its next version.",
        request=DatasetUploadSerializer,
        responses={201: DatasetDetailSerializer, 400: ErrorsSerializer, 413: ErrorsSerializer},
    )
    def post(self, request: Request) -> Response:
        try:
            data = request.data
        except exceptions.ParseError as exc:
            raise request_invalid({"__all__": [str(exc.detail)]}) from exc
        assert self.upload is not None
        if self.upload.too_large:
            raise RequestTooLarge(too_large_message())
        body = parse_data(DatasetUploadSerializer, data)
        upload = body["file"]
        if not isinstance(upload, StoredUpload):  # pragma: no cover - our handler made it
            raise request_invalid({"file": ["The file was not received."]})
        dataset = services.dataset_upload(
            user=authenticated_user(request),
            pending=upload.pending,
            filename=upload.name or "",
            name=body["name"],
            format=body["format"],
            task=body["task"],
            target=body["target"],
            preprocessing=body["preprocessing"],
            description=body.get("description", ""),
        )
        dataset = selectors.dataset_get_visible(user=request.user, dataset_id=dataset.pk)
        return Response(dataset_detail_body(dataset, request), status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Read a dataset version",
        description="With its schema, preview rows, chart, preprocessing, features and the "
        "other versions of its name.",
        responses={200: DatasetDetailSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = selectors.dataset_get_visible(user=request.user, dataset_id=dataset_id)
        return Response(dataset_detail_body(dataset, request))

    @extend_schema(
        summary="Delete a dataset version",
        description="Its owner or an admin may delete a version no job uses; the file goes "
        "with it. A version a job trained on answers 409 naming the jobs.",
        responses={
            204: None,
            403: DetailSerializer,
            404: NOT_FOUND,
            409: DetailSerializer,
        },
    )
    def delete(self, request: Request, dataset_id: int) -> Response:
        dataset = selectors.dataset_get_visible(user=request.user, dataset_id=dataset_id)
        try:
            services.dataset_delete(user=authenticated_user(request), dataset=dataset)
        except services.DatasetInUse as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(summary="List the model architectures you can see")
class ModelListApi(generics.ListAPIView[ModelArchitecture]):
    permission_classes = API_PERMISSIONS
    serializer_class = ModelArchitectureSerializer

    def get_queryset(self) -> QuerySet[ModelArchitecture]:
        return selectors.models_visible_to(self.request.user).select_related("owner", "team")
