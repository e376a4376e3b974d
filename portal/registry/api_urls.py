from __future__ import annotations

from django.urls import path

from portal.registry import api

app_name = "registry-api"
urlpatterns = [
    path("model-versions/", api.ModelVersionListCreateApi.as_view(), name="list"),
    path("model-versions/<int:version_id>/", api.ModelVersionDetailApi.as_view(), name="detail"),
    path(
        "model-versions/<int:version_id>/files/<str:kind>/",
        api.ModelVersionFileApi.as_view(),
        name="file",
    ),
    path(
        "model-versions/<int:version_id>/predict/",
        api.ModelVersionPredictApi.as_view(),
        name="predict",
    ),
]
