from __future__ import annotations

from django.urls import path

from portal.registry import views

app_name = "registry"
urlpatterns = [
    path("", views.model_version_list, name="list"),
    path("<int:version_id>/", views.model_version_detail, name="detail"),
    path("<int:version_id>/try/", views.model_version_try, name="try"),
    path("<int:version_id>/files/<str:kind>/", views.model_version_download, name="file"),
    path("register/<int:job_id>/", views.job_register, name="register"),
]
