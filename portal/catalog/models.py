from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Dataset(models.Model):
    """A tabular dataset behind a storage URI, validated before jobs may use it."""

    class State(models.TextChoices):
        VALIDATING = "validating", "Validating"
        READY = "ready", "Ready"
        INVALID = "invalid", "Invalid"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL)
    # Built-in datasets are visible to everyone.
    is_public = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.VALIDATING)
    state_reason = models.TextField(blank=True)
    uri = models.CharField(max_length=1000)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.CSV)
    feature_columns = models.JSONField(default=list)
    label_column = models.CharField(max_length=200)
    classes = models.JSONField(default=list)
    num_rows = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelArchitecture(models.Model):
    """A model family with its default hyperparameters, which a job may override."""

    class Family(models.TextChoices):
        MLP = "mlp", "Multi-layer perceptron"

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    family = models.CharField(max_length=16, choices=Family.choices)
    default_params = models.JSONField(default=dict)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL)
    is_public = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
