from __future__ import annotations

from django.urls import path

from portal.catalog import model_code_views, views

app_name = "catalog"
urlpatterns = [
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/upload/", views.dataset_upload_page, name="dataset-upload"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:dataset_id>/delete/", views.dataset_delete_view, name="dataset-delete"),
    path("datasets/<int:dataset_id>/download/", views.dataset_download, name="dataset-download"),
    path("models/", views.model_list, name="models"),
    path("models/upload/", model_code_views.model_code_new, name="model-upload"),
]
