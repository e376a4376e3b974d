from __future__ import annotations

from django.urls import path

from portal.notifications import api

app_name = "notifications-api"
urlpatterns = [
    path("notifications/", api.NotificationListApi.as_view(), name="list"),
    path("notifications/read/", api.NotificationMarkReadApi.as_view(), name="read"),
    path("notifications/preferences/", api.PreferencesApi.as_view(), name="preferences"),
    path("webhooks/", api.WebhookListCreateApi.as_view(), name="webhooks"),
    path("webhooks/<int:webhook_id>/", api.WebhookDetailApi.as_view(), name="webhook"),
    path("webhooks/<int:webhook_id>/test/", api.WebhookTestApi.as_view(), name="webhook-test"),
    path(
        "webhooks/<int:webhook_id>/deliveries/",
        api.DeliveryListApi.as_view(),
        name="webhook-deliveries",
    ),
    path("webhook-deliveries/", api.DeliveryListApi.as_view(), name="deliveries"),
]
