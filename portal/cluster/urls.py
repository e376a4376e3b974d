from __future__ import annotations

from django.urls import path

from portal.cluster import views

app_name = "cluster"
urlpatterns = [
    path("nodes/", views.node_list, name="nodes"),
    path("nodes/<int:node_id>/drain/", views.node_drain, name="drain"),
    path("nodes/<int:node_id>/cordon/", views.node_cordon, name="cordon"),
]
