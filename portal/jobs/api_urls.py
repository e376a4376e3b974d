from __future__ import annotations

from django.urls import path

from portal.jobs import api, telemetry_api

app_name = "jobs-api"
urlpatterns = [
    path("jobs/", api.JobListCreateApi.as_view(), name="list"),
    path("jobs/<int:job_id>/", api.JobDetailApi.as_view(), name="detail"),
    path("jobs/<int:job_id>/cancel/", api.JobCancelApi.as_view(), name="cancel"),
    path("jobs/<int:job_id>/metrics/", api.JobMetricsApi.as_view(), name="metrics"),
    path(
        "jobs/<int:job_id>/metrics/series/",
        telemetry_api.JobSeriesApi.as_view(),
        name="metrics-series",
    ),
    path(
        "jobs/<int:job_id>/metrics.csv",
        telemetry_api.JobMetricsCsvApi.as_view(),
        name="metrics-csv",
    ),
    path("jobs/<int:job_id>/timeline/", telemetry_api.JobTimelineApi.as_view(), name="timeline"),
    path("jobs/<int:job_id>/logs/", api.JobLogsApi.as_view(), name="logs"),
    path("jobs/<int:job_id>/checkpoints/", api.JobCheckpointsApi.as_view(), name="checkpoints"),
    path(
        "jobs/<int:job_id>/checkpoints/<int:checkpoint_id>/download/",
        api.JobCheckpointDownloadApi.as_view(),
        name="checkpoint-download",
    ),
]
