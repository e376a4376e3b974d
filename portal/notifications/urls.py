from __future__ import annotations

from django.urls import path

from portal.notifications import views

app_name = "notifications"
urlpatterns = [
    path("", views.notification_list, name="list"),
    path("read/", views.notifications_read, name="read"),
    path("preferences/", views.preferences_save, name="preferences"),
    path("webhooks/", views.webhook_create, name="webhook-create"),
    path("webhooks/<int:webhook_id>/", views.webhook_detail, name="webhook"),
    path("webhooks/<int:webhook_id>/test/", views.webhook_test, name="webhook-test"),
    path("webhooks/<int:webhook_id>/delete/", views.webhook_delete, name="webhook-delete"),
]
