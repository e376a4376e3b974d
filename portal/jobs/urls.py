from __future__ import annotations

from django.urls import path

from portal.jobs import views

app_name = "jobs"
urlpatterns = [
    path("jobs/", views.job_list, name="list"),
    path("jobs/cancel/", views.job_cancel_many, name="cancel-many"),
    path("jobs/new/", views.job_new, name="new"),
    path("jobs/new/preview/", views.job_preview_view, name="preview"),
    path("jobs/<int:job_id>/", views.job_detail, name="detail"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel_view, name="cancel"),
]
