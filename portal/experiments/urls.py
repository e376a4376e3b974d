from __future__ import annotations

from django.urls import path

from portal.experiments import views

app_name = "experiments"
urlpatterns = [
    path("", views.search_list, name="list"),
    path("new/", views.search_new, name="new"),
    path("<int:search_id>/", views.search_detail, name="detail"),
    path("<int:search_id>/chart.json", views.search_chart_json, name="chart"),
    path("<int:search_id>/cancel/", views.search_cancel_view, name="cancel"),
    path(
        "<int:search_id>/trials/<int:number>/cancel/",
        views.trial_cancel_view,
        name="trial-cancel",
    ),
    path("<int:search_id>/register/", views.search_register_view, name="register"),
]
