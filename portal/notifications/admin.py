"""Admin for notifications: read-only (writes go through `services`); secrets never shown."""

from __future__ import annotations

from django.contrib import admin

from portal.lib.admin import ReadOnlyAdmin
from portal.notifications.models import (
    Notification,
    NotificationPreferences,
    Webhook,
    WebhookDelivery,
)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin[Notification]):
    list_display = ("created_at", "user", "event", "title", "read_at")
    list_filter = ("event",)
    search_fields = ("user__username", "title")
    list_select_related = ("user",)


@admin.register(NotificationPreferences)
class NotificationPreferencesAdmin(ReadOnlyAdmin[NotificationPreferences]):
    list_display = ("user", "email", "updated_at")
    list_select_related = ("user",)


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyAdmin[Webhook]):
    list_display = ("id", "owner", "url", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("owner__username", "url")
    list_select_related = ("owner",)
    exclude = ("secret",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin[WebhookDelivery]):
    list_display = (
        "created_at",
        "webhook",
        "event",
        "state",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    )
    list_filter = ("state", "event")
    search_fields = ("uid", "webhook__url", "webhook__owner__username")
    list_select_related = ("webhook",)
