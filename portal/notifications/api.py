"""The notifications REST API: the list and marking read, preferences, webhooks, deliveries.

Every object is the caller's own; another user's webhook answers 404.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.authentication import TokenScopePermission, authenticated_user
from portal.lib.drf import (
    BoundedJSONParser,
    ErrorsSerializer,
    django_errors,
    request_invalid,
)
from portal.notifications import selectors, services
from portal.notifications.models import Notification, WebhookDelivery
from portal.notifications.serializers import (
    DeliverySerializer,
    MarkedSerializer,
    MarkReadSerializer,
    NotificationListQuerySerializer,
    NotificationSerializer,
    PreferencesSerializer,
    WebhookCreatedSerializer,
    WebhookCreateSerializer,
    WebhookSerializer,
)

API_PERMISSIONS = [IsAuthenticated, TokenScopePermission]
NOT_FOUND = OpenApiResponse(description="No such webhook, or not yours.")


def _dotted(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors (a list field's are keyed by index) as the error shape's dotted
    paths: `{"events.0": ["..."]}`."""
    if isinstance(errors, dict):
        flat: dict[str, list[str]] = {}
        for key, value in errors.items():
            flat.update(_dotted(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(errors, list) and all(isinstance(item, str) for item in errors):
        return {prefix or "__all__": [str(item) for item in errors]}
    if isinstance(errors, list):
        flat = {}
        for index, item in enumerate(errors):
            flat.update(_dotted(item, f"{prefix}.{index}"))
        return flat
    return {prefix or "__all__": [str(errors)]}


def parse_data(serializer_class: type[serializers.Serializer[Any]], data: Any) -> Any:
    """`data` validated by the serializer, or the 400 shape with dotted paths."""
    parsed = serializer_class(data=data)
    if not parsed.is_valid():
        raise request_invalid(_dotted(parsed.errors))
    return parsed.validated_data


def _body(request: Request) -> Any:
    try:
        return request.data
    except exceptions.ParseError as exc:
        raise request_invalid({"__all__": [str(exc.detail)]}) from exc


class NotificationListApi(generics.ListAPIView[Notification]):
    permission_classes = API_PERMISSIONS
    serializer_class = NotificationSerializer

    def get_queryset(self) -> QuerySet[Notification]:
        query = parse_data(NotificationListQuerySerializer, self.request.query_params)
        notifications = selectors.notifications_of(self.request.user)
        if query.get("unread"):
            notifications = notifications.filter(read_at__isnull=True)
        return notifications

    @extend_schema(
        summary="List your notifications, newest first",
        parameters=[NotificationListQuerySerializer],
        responses={200: NotificationSerializer(many=True), 400: ErrorsSerializer},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class NotificationMarkReadApi(APIView):
    permission_classes = API_PERMISSIONS
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        summary="Mark notifications read",
        request=MarkReadSerializer,
        responses={200: MarkedSerializer, 400: ErrorsSerializer},
    )
    def post(self, request: Request) -> Response:
        body = parse_data(MarkReadSerializer, _body(request) or {})
        marked = services.notifications_mark_read(
            user=authenticated_user(request), ids=body.get("ids")
        )
        return Response({"marked": marked})


class PreferencesApi(APIView):
    permission_classes = API_PERMISSIONS
    parser_classes = [BoundedJSONParser]

    @extend_schema(summary="Read your notification preferences", responses=PreferencesSerializer)
    def get(self, request: Request) -> Response:
        preferences = services.preferences_of(authenticated_user(request))
        return Response(PreferencesSerializer(preferences).data)

    @extend_schema(
        summary="Choose which events notify you",
        request=PreferencesSerializer,
        responses={200: PreferencesSerializer, 400: ErrorsSerializer},
    )
    def put(self, request: Request) -> Response:
        body = parse_data(PreferencesSerializer, _body(request))
        try:
            preferences = services.preferences_update(
                user=authenticated_user(request), events=body["events"], email=body["email"]
            )
        except DjangoValidationError as exc:
            raise request_invalid(django_errors(exc)) from exc
        return Response(PreferencesSerializer(preferences).data)


class WebhookListCreateApi(APIView):
    permission_classes = API_PERMISSIONS
    parser_classes = [BoundedJSONParser]

    @extend_schema(summary="List your webhooks", responses=WebhookSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(WebhookSerializer(selectors.webhooks_of(request.user), many=True).data)

    @extend_schema(
        summary="Add a webhook",
        description="Deliveries are POSTed as JSON and signed: `X-Trainyard-Signature: "
        't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed by the secret>` '
        "(docs/notifications.md). The answer carries the secret; it is never shown again. "
        "URLs must be http(s) on public addresses.",
        request=WebhookCreateSerializer,
        responses={201: WebhookCreatedSerializer, 400: ErrorsSerializer},
    )
    def post(self, request: Request) -> Response:
        body = parse_data(WebhookCreateSerializer, _body(request))
        try:
            issued = services.webhook_create(
                user=authenticated_user(request), url=body["url"], events=body["events"]
            )
        except DjangoValidationError as exc:
            raise request_invalid(django_errors(exc)) from exc
        data = WebhookCreatedSerializer(issued.webhook, context={"secret": issued.secret}).data
        return Response(data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(summary="Read a webhook", responses={200: WebhookSerializer, 404: NOT_FOUND})
    def get(self, request: Request, webhook_id: int) -> Response:
        webhook = selectors.webhook_get_own(user=request.user, webhook_id=webhook_id)
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(summary="Delete a webhook", responses={204: None, 404: NOT_FOUND})
    def delete(self, request: Request, webhook_id: int) -> Response:
        user = authenticated_user(request)
        webhook = selectors.webhook_get_own(user=user, webhook_id=webhook_id)
        services.webhook_delete(user=user, webhook=webhook)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestApi(APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(
        summary="Send a test delivery",
        request=None,
        responses={202: DeliverySerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request, webhook_id: int) -> Response:
        user = authenticated_user(request)
        webhook = selectors.webhook_get_own(user=user, webhook_id=webhook_id)
        delivery = services.webhook_test(user=user, webhook=webhook)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryListApi(generics.ListAPIView[WebhookDelivery]):
    permission_classes = API_PERMISSIONS
    serializer_class = DeliverySerializer

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        webhook_id = self.kwargs.get("webhook_id")
        webhook = (
            selectors.webhook_get_own(user=self.request.user, webhook_id=webhook_id)
            if webhook_id is not None
            else None
        )
        return selectors.deliveries_of(self.request.user, webhook=webhook)

    @extend_schema(
        summary="The delivery log: each delivery's state, tries, last answer and next try",
        responses={200: DeliverySerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
