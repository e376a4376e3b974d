from __future__ import annotations

from django.urls import path

from portal.jobs import api, series_api, telemetry_api, templates_api

app_name = "jobs-api"
urlpatterns = [
    path("jobs/", api.JobListCreateApi.as_view(), name="list"),
    path("jobs/<int:job_id>/", api.JobDetailApi.as_view(), name="detail"),
    path("jobs/<int:job_id>/cancel/", api.JobCancelApi.as_view(), name="cancel"),
    path("jobs/<int:job_id>/metrics/", api.JobMetricsApi.as_view(), name="metrics"),
    path("jobs/<int:job_id>/logs/", telemetry_api.JobLogsApi.as_view(), name="logs"),
    path(
        "jobs/<int:job_id>/logs/download/",
        telemetry_api.JobLogDownloadApi.as_view(),
        name="logs-download",
    ),
    path("jobs/<int:job_id>/ranks/", telemetry_api.JobRankSamplesApi.as_view(), name="ranks"),
    path(
        "jobs/<int:job_id>/metrics/series/",
        series_api.JobSeriesApi.as_view(),
        name="metrics-series",
    ),
    path(
        "jobs/<int:job_id>/metrics.csv",
        series_api.JobMetricsCsvApi.as_view(),
        name="metrics-csv",
    ),
    path("jobs/<int:job_id>/timeline/", series_api.JobTimelineApi.as_view(), name="timeline"),
    path("jobs/<int:job_id>/checkpoints/", api.JobCheckpointsApi.as_view(), name="checkpoints"),
    path(
        "jobs/<int:job_id>/checkpoints/<int:checkpoint_id>/download/",
        api.JobCheckpointDownloadApi.as_view(),
        name="checkpoint-download",
    ),
    path("job-templates/", templates_api.JobTemplateListCreateApi.as_view(), name="templates"),
    path(
        "job-templates/<int:template_id>/",
        templates_api.JobTemplateDetailApi.as_view(),
        name="template",
    ),
    path(
        "job-templates/<int:template_id>/submit/",
        templates_api.JobTemplateSubmitApi.as_view(),
        name="template-submit",
    ),
]
