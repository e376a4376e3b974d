from __future__ import annotations

from django.db import models
from django.utils import timezone


class Node(models.Model):
    """A machine that runs a node agent. It registers itself through its heartbeats."""

    class State(models.TextChoices):
        ONLINE = "online", "Online"
        OFFLINE = "offline", "Offline"

    name = models.CharField(max_length=100, unique=True)
    hostname = models.CharField(max_length=255, blank=True)
    # The address other nodes use to reach this one's c10d rendezvous.
    address = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ONLINE)
    # An admin's decision, separate from liveness: a draining node takes no new work.
    is_draining = models.BooleanField(default=False)
    cpu_slots = models.PositiveIntegerField(default=0)
    gpu_count = models.PositiveIntegerField(default=0)
    # The latest heartbeat as the node sent it (workers.messages.HealthEntry).
    health = models.JSONField(default=dict, blank=True)
    registered_at = models.DateTimeField(default=timezone.now)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_schedulable(self) -> bool:
        return self.state == self.State.ONLINE and not self.is_draining
