"""How notifications, preferences, webhooks and deliveries look in the REST API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from portal.notifications.models import (
    ALL_EVENTS,
    Event,
    Notification,
    NotificationPreferences,
    Webhook,
    WebhookDelivery,
)

EVENTS_HELP = "Events: " + ", ".join(ALL_EVENTS) + "."


class NotificationSerializer(serializers.ModelSerializer[Notification]):
    read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "event", "title", "body", "url", "created_at", "read_at", "read"]
        read_only_fields = fields

    def get_read(self, notification: Notification) -> bool:
        return notification.read_at is not None


class NotificationListQuerySerializer(serializers.Serializer[Any]):
    unread = serializers.BooleanField(required=False, help_text="Only the unread ones.")


class MarkReadSerializer(serializers.Serializer[Any]):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=1000,
        help_text="Which to mark read; absent: every one of yours.",
    )


class MarkedSerializer(serializers.Serializer[Any]):
    marked = serializers.IntegerField()


class PreferencesSerializer(serializers.ModelSerializer[NotificationPreferences]):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=Event.choices),
        max_length=len(ALL_EVENTS),
        help_text=EVENTS_HELP,
    )
    email = serializers.BooleanField(
        help_text="Also email them (when the portal sends email and you have an address)."
    )

    class Meta:
        model = NotificationPreferences
        fields = ["events", "email"]


class WebhookSerializer(serializers.ModelSerializer[Webhook]):
    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "active", "created_at"]
        read_only_fields = fields


class WebhookCreateSerializer(serializers.Serializer[Any]):
    url = serializers.CharField(max_length=500, help_text="http(s); public hosts only.")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=Event.choices),
        min_length=1,
        max_length=len(ALL_EVENTS),
        help_text=EVENTS_HELP,
    )


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.SerializerMethodField(
        help_text="Signs every delivery. Shown this once: store it now."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, webhook: Webhook) -> str:
        return str(self.context["secret"])


class DeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    uid = serializers.UUIDField(read_only=True, help_text="X-Trainyard-Delivery.")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "uid",
            "webhook",
            "event",
            "state",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields
