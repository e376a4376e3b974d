from __future__ import annotations

from django.contrib import admin

from portal.dashboard.models import ClusterSample
from portal.lib.admin import ReadOnlyAdmin


@admin.register(ClusterSample)
class ClusterSampleAdmin(ReadOnlyAdmin[ClusterSample]):
    list_display = [
        "at",
        "nodes_online",
        "gpus_allocated",
        "gpus_total",
        "cpu_slots_allocated",
        "cpu_slots_total",
        "queued",
        "running",
    ]
    date_hierarchy = "at"
