"""DRF plumbing every API shares: a bounded JSON parser, bounded pagination, the error shape.

Bad input must answer 4xx, never 500: a body nested deeper than Python's recursion limit
crashed `json.loads`, and `?limit=` / `?offset=` beyond PostgreSQL's bigint did the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

# Deep enough for any job request (which nests three levels), far below the recursion limit.
JSON_MAX_DEPTH = 32
# Offsets beyond this page through nothing anyone has; PostgreSQL's OFFSET is a bigint.
PAGE_MAX_OFFSET = 10**9


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests containers deeper than `limit` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class BoundedJSONParser(JSONParser):
    """JSON with a size cap (DATA_UPLOAD_MAX_MEMORY_SIZE) and a nesting cap (JSON_MAX_DEPTH)."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            data = json.loads(raw)
        except RecursionError:
            raise exceptions.ParseError(
                f"JSON parse error - nested deeper than {JSON_MAX_DEPTH} levels"
            ) from None
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError both
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        if json_depth_exceeds(data, JSON_MAX_DEPTH):
            raise exceptions.ParseError(
                f"JSON parse error - nested deeper than {JSON_MAX_DEPTH} levels"
            )
        return data


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=` is capped at `max_limit` and `?offset=` at PAGE_MAX_OFFSET (an empty page)."""

    max_limit = 500

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), PAGE_MAX_OFFSET)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: self.max_limit, self.offset_query_param: PAGE_MAX_OFFSET}
        for parameter in parameters:
            if parameter["name"] in bounds:
                parameter["schema"] = {
                    **parameter["schema"],
                    "minimum": 0 if parameter["name"] == self.offset_query_param else 1,
                    "maximum": bounds[parameter["name"]],
                }
        return parameters


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with request-content errors (parse, too large) in the 400 shape:
    `{"errors": {"__all__": ["..."]}}`. Other statuses keep `{"detail": "..."}`."""
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES (this module) on import.
    from rest_framework.views import exception_handler

    if isinstance(exc, RequestDataTooBig):
        # Django refuses a large body when DRF reads `request.body` (before our parser runs).
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = RequestTooLarge(f"The request body is larger than {limit} bytes.")
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ParseError | RequestTooLarge):
        response.data = {"errors": {"__all__": [str(exc.detail)]}}
    return response


# The body of every 400 answer.
ErrorsSerializer = inline_serializer(
    name="Errors",
    fields={
        # A field named `errors` would shadow `Serializer.errors`, so this one is built inline.
        "errors": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            help_text="Messages keyed by the dotted path of the field at fault, for example "
            '{"training.epochs": ["Input should be greater than or equal to 1"]}; '
            '"__all__" holds errors about the request as a whole.',
        )
    },
)


def request_invalid(errors: Mapping[str, Any]) -> exceptions.ValidationError:
    """The 400 every API view answers with: `{"errors": {"dotted.path": ["message", ...]}}`."""
    return exceptions.ValidationError({"errors": errors})


def django_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    """A Django ValidationError's messages in the error shape's mapping."""
    if hasattr(exc, "error_dict"):
        return {key: list(messages) for key, messages in exc.message_dict.items()}
    return {"__all__": list(exc.messages)}


def parse_data(serializer_class: type[serializers.Serializer[Any]], data: Any) -> Any:
    """`data` (a body or query parameters) validated by the serializer, or the 400 shape."""
    parsed = serializer_class(data=data)
    if not parsed.is_valid():
        raise request_invalid(parsed.errors)
    return parsed.validated_data
