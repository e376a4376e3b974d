from __future__ import annotations

from django.urls import path

from portal.jobs import views

app_name = "jobs"
urlpatterns = [
    path("jobs/", views.job_list, name="list"),
    path("jobs/cancel/", views.job_cancel_many, name="cancel-many"),
    path("jobs/new/", views.job_new, name="new"),
    path("jobs/new/preview/", views.job_preview_view, name="preview"),
    path("jobs/compare/", views.job_compare, name="compare"),
    path("jobs/templates/", views.job_template_list, name="templates"),
    path(
        "jobs/templates/<int:template_id>/delete/",
        views.job_template_delete_view,
        name="template-delete",
    ),
    path("jobs/<int:job_id>/save-template/", views.job_template_from_job, name="save-template"),
    path("jobs/<int:job_id>/", views.job_detail, name="detail"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel_view, name="cancel"),
]
