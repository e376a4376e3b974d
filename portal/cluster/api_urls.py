from __future__ import annotations

from django.urls import path

from portal.cluster import api

app_name = "cluster-api"
urlpatterns = [
    path("nodes/", api.NodeListApi.as_view(), name="nodes"),
    path("nodes/<str:name>/drain/", api.NodeDrainApi.as_view(), name="drain"),
    path("nodes/<str:name>/undrain/", api.NodeUndrainApi.as_view(), name="undrain"),
    path("nodes/<str:name>/cordon/", api.NodeCordonApi.as_view(), name="cordon"),
    path("nodes/<str:name>/uncordon/", api.NodeUncordonApi.as_view(), name="uncordon"),
    path("nodes/<str:name>/events/", api.NodeEventListApi.as_view(), name="events"),
    path("pools/", api.PoolListApi.as_view(), name="pools"),
]
