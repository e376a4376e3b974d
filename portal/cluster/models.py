from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

DEFAULT_POOL = "default"


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
    # Taken out of service because it looks broken (by an admin, or automatically after
    # `TRAINYARD_NODE_FAILURES_TO_CORDON` failures in a row): no new work until uncordoned.
    is_cordoned = models.BooleanField(default=False)
    cordon_reason = models.TextField(blank=True)
    # Failed shares of attempts in a row on this node (reset by a clean exit).
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Why the node's own report says it should take no new work (a GPU with uncorrectable
    # memory errors); blank while it is healthy. Set from every heartbeat.
    unhealthy_reason = models.TextField(blank=True)
    # Set by the agent's configuration (TRAINYARD_NODE_POOL, TRAINYARD_NODE_LABELS): jobs
    # name a pool and a label selector.
    pool = models.CharField(max_length=63, default=DEFAULT_POOL)
    labels = models.JSONField(default=dict, blank=True)
    cpu_slots = models.PositiveIntegerField(default=0)
    gpu_count = models.PositiveIntegerField(default=0)
    # The model name NVML reports for the node's GPUs ("NVIDIA H200"); blank without GPUs.
    gpu_model = models.CharField(max_length=255, blank=True)
    # The latest heartbeat as the node sent it (workers.messages.HealthEntry).
    health = models.JSONField(default=dict, blank=True)
    registered_at = models.DateTimeField(default=timezone.now)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["pool", "state"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_schedulable(self) -> bool:
        return (
            self.state == self.State.ONLINE
            and not self.is_draining
            and not self.is_cordoned
            and not self.unhealthy_reason
        )

    @property
    def status(self) -> str:
        """What the nodes page shows: offline, cordoned, unhealthy, draining or online."""
        if self.state != self.State.ONLINE:
            return "offline"
        if self.is_cordoned:
            return "cordoned"
        if self.unhealthy_reason:
            return "unhealthy"
        return "draining" if self.is_draining else "online"


class NodeEvent(models.Model):
    """A change of a node's availability: who (an admin, or None for Trainyard itself), when,
    what and why. The nodes page and the API show a node's recent history from these."""

    class Kind(models.TextChoices):
        DRAIN = "drain", "Drained"
        UNDRAIN = "undrain", "Undrained"
        CORDON = "cordon", "Cordoned"
        UNCORDON = "uncordon", "Uncordoned"
        UNHEALTHY = "unhealthy", "Became unhealthy"
        HEALTHY = "healthy", "Became healthy"
        OFFLINE = "offline", "Went offline"
        ONLINE = "online", "Came online"

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    reason = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["node", "-at"])]

    def __str__(self) -> str:
        return f"{self.node_id} {self.kind} at {self.at:%Y-%m-%d %H:%M:%S}"


class NodeSample(models.Model):
    """One reading from a node's heartbeat history: its host (`gpu` is None: CPU percent and
    memory) or one of its GPUs. A job's timeline reads the samples of the nodes it ran on.

    At most one per node, device and `TRAINYARD_NODE_SAMPLE_S` step (`slot` is the heartbeat's
    time divided by the step, and the key is unique), kept `TRAINYARD_NODE_SAMPLE_RETENTION_H`."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField()  # when the node took the reading
    slot = models.BigIntegerField()
    gpu = models.PositiveSmallIntegerField(null=True, blank=True)  # NVML index
    utilization = models.FloatField(null=True)  # percent; None where NVML cannot read it
    memory_used = models.BigIntegerField()
    memory_total = models.BigIntegerField()

    class Meta:
        ordering = ["node", "at", "gpu"]
        constraints = [
            models.UniqueConstraint(
                fields=["node", "slot", "gpu"],
                name="nodesample_node_slot_gpu",
                nulls_distinct=False,
            )
        ]
        indexes = [
            # A job's timeline: one node's readings over a window.
            models.Index(fields=["node", "at"], name="nodesample_node_at"),
            # Retention deletes by age across nodes.
            models.Index(fields=["at"], name="nodesample_at"),
        ]

    def __str__(self) -> str:
        device = "host" if self.gpu is None else f"gpu{self.gpu}"
        return f"{self.node_id} {device} at {self.at:%Y-%m-%d %H:%M:%S}"
