from __future__ import annotations

from django.urls import path

from portal.catalog import views

app_name = "catalog"
urlpatterns = [
    path("datasets/", views.dataset_list, name="datasets"),
    path("models/", views.model_list, name="models"),
]
