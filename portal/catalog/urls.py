from __future__ import annotations

from django.urls import path

from portal.catalog import model_code_views, views

app_name = "catalog"
urlpatterns = [
    path("datasets/", views.dataset_list, name="datasets"),
    path("models/", views.model_list, name="models"),
    path("models/upload/", model_code_views.model_code_new, name="model-upload"),
]
