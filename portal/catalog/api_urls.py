from __future__ import annotations

from django.urls import path

from portal.catalog import api, model_code_api

app_name = "catalog-api"
urlpatterns = [
    path("datasets/", api.DatasetListCreateApi.as_view(), name="datasets"),
    path("datasets/<int:dataset_id>/", api.DatasetDetailApi.as_view(), name="dataset"),
    path("models/", model_code_api.ModelListUploadApi.as_view(), name="models"),
]
