from __future__ import annotations

from django.urls import path

from portal.dashboard import api

app_name = "dashboard-api"
urlpatterns = [
    path("cluster/summary/", api.ClusterSummaryApi.as_view(), name="summary"),
    path("cluster/utilisation/", api.UtilisationApi.as_view(), name="utilisation"),
    path("cluster/queue/", api.QueueStatsApi.as_view(), name="queue"),
    path("cluster/timeline/", api.TimelineApi.as_view(), name="timeline"),
]
