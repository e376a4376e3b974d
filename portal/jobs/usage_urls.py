from __future__ import annotations

from django.urls import path

from portal.jobs import usage_views

app_name = "usage"
urlpatterns = [
    path("usage/", usage_views.usage_page, name="usage"),
    path("usage/export.csv", usage_views.usage_csv, name="export"),
    path("quotas/", usage_views.quotas_page, name="quotas"),
]
