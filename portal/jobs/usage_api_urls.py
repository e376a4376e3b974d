from __future__ import annotations

from django.urls import path

from portal.jobs import usage_api

app_name = "usage-api"
urlpatterns = [
    path("usage/", usage_api.UsageApi.as_view(), name="usage"),
    path("quotas/", usage_api.QuotaOverviewApi.as_view(), name="quotas"),
]
