from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class Team(models.Model):
    """A group of users who see and act on each other's datasets, models and jobs."""

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Quota(models.Model):
    """Limits on one user's or one team's share of the cluster (exactly one of `user`, `team`).

    A blank limit (None) falls back to the cluster-wide default in the settings
    (`TRAINYARD_QUOTA_DEFAULTS`), where None means unlimited. A job counts against its owner's
    quota and against the quota of the team it is charged to. Concurrent limits (GPUs, CPU
    slots, running jobs) and the rolling GPU-/CPU-slot-hours are checked when the scheduler
    admits a job; the queued-jobs limit when it is submitted; the priority range both times.
    See docs/quotas.md.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="quota",
    )
    team = models.OneToOneField(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="quota"
    )
    max_gpus = models.PositiveIntegerField(null=True, blank=True)
    max_cpu_slots = models.PositiveIntegerField(null=True, blank=True)
    max_running_jobs = models.PositiveIntegerField(null=True, blank=True)
    max_queued_jobs = models.PositiveIntegerField(null=True, blank=True)
    # Over the last 30 days (TRAINYARD_QUOTA_WINDOW_DAYS), counted from placements.
    max_gpu_hours = models.FloatField(null=True, blank=True)
    max_cpu_slot_hours = models.FloatField(null=True, blank=True)
    # The priorities a job charged here may ask for (inclusive); blank: the default range.
    min_priority = models.IntegerField(null=True, blank=True)
    max_priority = models.IntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, team__isnull=True)
                | models.Q(user__isnull=True, team__isnull=False),
                name="quota_user_xor_team",
            ),
            models.CheckConstraint(
                condition=models.Q(min_priority__isnull=True)
                | models.Q(max_priority__isnull=True)
                | models.Q(min_priority__lte=models.F("max_priority")),
                name="quota_priority_range",
            ),
        ]

    def __str__(self) -> str:
        return f"quota of {self.user or self.team}"


class ApiToken(models.Model):
    """A personal access token for scripts. Only a SHA-256 digest of the secret is stored."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Read and write"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # The public part of the token (`ty_<prefix>_<secret>`), used to find the row.
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.WRITE)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (ty_{self.prefix}_…)"

    def is_usable(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now
