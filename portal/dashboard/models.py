from __future__ import annotations

from django.db import models
from django.utils import timezone


class ClusterSample(models.Model):
    """The whole cluster at one moment, written by the control worker every
    `TRAINYARD_SAMPLE_S` (`portal.dashboard.services.cluster_sample_record`): the history
    behind the dashboard's utilisation and queue charts, since nodes and jobs hold only now.

    *Allocated* is what placements hold (the scheduler's view); *used* is what the nodes'
    heartbeats measured (GPU utilisation, CPU percent), in GPUs and CPU slots busy."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    nodes_online = models.PositiveIntegerField(default=0)
    gpus_total = models.PositiveIntegerField(default=0)
    gpus_allocated = models.PositiveIntegerField(default=0)
    gpus_used = models.FloatField(default=0.0)
    cpu_slots_total = models.PositiveIntegerField(default=0)
    cpu_slots_allocated = models.PositiveIntegerField(default=0)
    cpu_slots_used = models.FloatField(default=0.0)
    queued = models.PositiveIntegerField(default=0)
    running = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"cluster at {self.at:%Y-%m-%d %H:%M:%S}"
