from __future__ import annotations

from django.urls import path

from portal.registry import views

app_name = "registry"
urlpatterns = [
    path("", views.model_version_list, name="list"),
    path("<int:version_id>/", views.model_version_detail, name="detail"),
    path("<int:version_id>/try/", views.model_version_try, name="try"),
    # One route per file (no string parameter): the two downloads are all there is.
    path(
        "<int:version_id>/files/safetensors/",
        views.model_version_download,
        {"kind": "safetensors"},
        name="file-safetensors",
    ),
    path(
        "<int:version_id>/files/torchscript/",
        views.model_version_download,
        {"kind": "torchscript"},
        name="file-torchscript",
    ),
    path("register/<int:job_id>/", views.job_register, name="register"),
]
