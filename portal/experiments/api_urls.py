from __future__ import annotations

from django.urls import path

from portal.experiments import api

app_name = "experiments-api"
urlpatterns = [
    path("searches/", api.SearchListCreateApi.as_view(), name="list"),
    path("searches/<int:search_id>/", api.SearchDetailApi.as_view(), name="detail"),
    path("searches/<int:search_id>/cancel/", api.SearchCancelApi.as_view(), name="cancel"),
    path(
        "searches/<int:search_id>/trials/<int:number>/cancel/",
        api.TrialCancelApi.as_view(),
        name="trial-cancel",
    ),
    path(
        "searches/<int:search_id>/register-best/",
        api.SearchRegisterBestApi.as_view(),
        name="register-best",
    ),
]
