from __future__ import annotations

from django.urls import path

from portal.audit import api

app_name = "audit-api"
urlpatterns = [path("", api.AuditEventListApi.as_view(), name="list")]
