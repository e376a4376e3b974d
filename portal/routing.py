from __future__ import annotations

from django.urls import path

from portal.cluster import consumers as cluster_consumers
from portal.dashboard import consumers as dashboard_consumers
from portal.jobs import consumers as job_consumers

websocket_urlpatterns = [
    path("ws/jobs/", job_consumers.JobListConsumer.as_asgi()),
    path("ws/jobs/<int:job_id>/", job_consumers.JobConsumer.as_asgi()),
    path("ws/nodes/", cluster_consumers.NodesConsumer.as_asgi()),
    path("ws/dashboard/", dashboard_consumers.DashboardConsumer.as_asgi()),
]
