"""`POST /api/v1/models/`: upload custom model code (multipart), for users granted
`catalog.run_custom_code`. Listing stays `portal.catalog.api.ModelListApi`'s."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.uploadedfile import UploadedFile
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from portal.accounts.authentication import authenticated_user
from portal.catalog.api import ModelListApi
from portal.catalog.model_code import (
    PERMISSION_MESSAGE,
    ModelCodeUpload,
    model_code_upload,
    user_may_run_custom_code,
)
from portal.catalog.serializers import ModelArchitectureSerializer
from portal.lib.drf import (
    BoundedJSONParser,
    ErrorsSerializer,
    RequestTooLarge,
    django_errors,
    request_invalid,
)

# The form fields around the file, on top of the file's own limit.
_FORM_SLACK_BYTES = 64 * 1024


def read_upload(file: UploadedFile[bytes], limit: int) -> bytes:
    """The upload's bytes, at most `limit + 1` of them (one more says it is too large)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in file.chunks():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[: limit + 1]


def parse_default_params(raw: str) -> Any:
    """The `default_params` form field: a JSON object, `{}` when left empty."""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise DjangoValidationError(
            {"default_params": [f"Default hyperparameters are not JSON: {exc}"]}
        ) from exc


class ModelListUploadApi(ModelListApi):
    parser_classes = [MultiPartParser, BoundedJSONParser]

    @extend_schema(
        summary="Upload custom model code",
        description="Multipart: `file` (a UTF-8 Python file defining a top-level "
        "`build_model(input_shape, num_classes, **hparams)`), `name`, `description` and "
        "`default_params` (a JSON object). Needs the permission `catalog.run_custom_code`, "
        "which an admin grants. The file is parsed, never run, by the portal; it runs only on "
        "nodes, after its SHA-256 matched.",
        request={
            "multipart/form-data": inline_serializer(
                name="ModelCodeUpload",
                fields={
                    "file": serializers.FileField(),
                    "name": serializers.CharField(max_length=200),
                    "description": serializers.CharField(required=False),
                    "default_params": serializers.CharField(required=False),
                },
            )
        },
        responses={
            201: ModelArchitectureSerializer,
            400: ErrorsSerializer,
            403: OpenApiResponse(description="You lack catalog.run_custom_code."),
            413: ErrorsSerializer,
        },
    )
    def post(self, request: Request) -> Response:
        user = authenticated_user(request)
        if not user_may_run_custom_code(user):
            raise exceptions.PermissionDenied(PERMISSION_MESSAGE)
        limit = settings.TRAINYARD_MODEL_CODE_MAX_BYTES
        # Refused before the body is parsed (and spooled to disk), where the size is known.
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit + _FORM_SLACK_BYTES:
            raise RequestTooLarge(f"Model code is limited to {limit} bytes.")
        try:
            data, files = request.data, request.FILES
        except exceptions.ParseError as exc:
            raise request_invalid({"__all__": [str(exc.detail)]}) from exc
        if not isinstance(data, Mapping):
            raise request_invalid({"__all__": ["Send the upload as multipart/form-data."]})
        file = files.get("file")
        if not isinstance(file, UploadedFile):
            raise request_invalid({"file": ["Attach the model's Python file as `file`."]})
        try:
            upload = ModelCodeUpload(
                filename=file.name or "model.py",
                content=read_upload(file, limit),
                name=str(data.get("name", "")),
                description=str(data.get("description", "")),
                default_params=parse_default_params(str(data.get("default_params", ""))),
            )
            architecture = model_code_upload(user=user, upload=upload)
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc)) from exc
        except DjangoValidationError as exc:
            raise request_invalid(django_errors(exc)) from exc
        body = ModelArchitectureSerializer(architecture).data
        return Response(body, status=status.HTTP_201_CREATED)
