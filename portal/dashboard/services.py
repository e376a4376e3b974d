"""Writes for the dashboard: the periodic cluster sample behind its history charts."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from portal.dashboard.models import ClusterSample
from portal.dashboard.selectors import cluster_totals_now


def cluster_sample_record() -> ClusterSample:
    """Store the cluster as it is now (capacity, allocation, measured use, the queue), and
    drop samples older than `TRAINYARD_SAMPLE_RETENTION_DAYS`."""
    now = timezone.now()
    totals, queue = cluster_totals_now(now=now)
    sample = ClusterSample.objects.create(
        at=now,
        nodes_online=totals["nodes"],
        gpus_total=totals["gpus"],
        gpus_allocated=totals["gpus_in_use"],
        gpus_used=totals["gpus_busy"],
        cpu_slots_total=totals["cpu_slots"],
        cpu_slots_allocated=totals["cpu_slots_in_use"],
        cpu_slots_used=totals["cpu_slots_busy"],
        queued=queue["queued"],
        running=queue["active"],
    )
    retention = timedelta(days=settings.TRAINYARD_SAMPLE_RETENTION_DAYS)
    ClusterSample.objects.filter(at__lt=now - retention).delete()
    return sample
