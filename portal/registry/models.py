from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ModelVersion(models.Model):
    """A trained model kept for use: one job's best checkpoint, exported, with its lineage.

    Registered by `portal.registry.services.model_version_register` from the export the trainer
    wrote when the job succeeded (`attempt-<id>/export/` under the job's checkpoint directory):
    safetensors weights, a TorchScript program and `model.json`. Registering under a name the
    owner already has makes the next version. The job and the dataset version it trained on
    are protected from deletion while a model version names them. Predictions are made by the
    `predict` worker (`portal.registry.tasks`), never by the web process.
    """

    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="model_versions"
    )
    # The job's team: its members see the version, as they see the job.
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL)
    # Lineage: the job, the attempt that succeeded and its best checkpoint, the dataset version.
    job = models.ForeignKey("jobs.Job", on_delete=models.PROTECT, related_name="model_versions")
    attempt = models.ForeignKey("jobs.Attempt", on_delete=models.PROTECT, related_name="+")
    checkpoint_name = models.CharField(max_length=255)
    checkpoint_sha256 = models.CharField(max_length=64)
    dataset = models.ForeignKey(
        "catalog.Dataset", on_delete=models.PROTECT, related_name="model_versions"
    )
    # What model.json says the weights are: the architecture (a `workers.messages` model
    # Struct as JSON), one example's shape, the output width, and how outputs become answers.
    architecture = models.JSONField()
    input_shape = models.JSONField()
    outputs = models.PositiveIntegerField()
    task = models.CharField(max_length=16)
    classes = models.JSONField(default=list)
    target_shift = models.FloatField(default=0.0)
    target_scale = models.FloatField(default=1.0)
    # The job's request as it ran (training parameters, hyperparameters, resources).
    hyperparameters = models.JSONField(default=dict)
    # The best checkpoint's validation metrics.
    epoch = models.PositiveIntegerField()
    val_loss = models.FloatField(null=True, blank=True)
    val_accuracy = models.FloatField(null=True, blank=True)
    # The exported files, checked against these digests before anything loads them.
    safetensors_uri = models.CharField(max_length=2000)
    safetensors_sha256 = models.CharField(max_length=64)
    safetensors_size = models.BigIntegerField(default=0)
    torchscript_uri = models.CharField(max_length=2000)
    torchscript_sha256 = models.CharField(max_length=64)
    torchscript_size = models.BigIntegerField(default=0)
    manifest_uri = models.CharField(max_length=2000)
    manifest_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name", "version"], name="model_version_owner_name_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_custom(self) -> bool:
        """Custom code is served from its TorchScript export, so no user Python ever runs."""
        return isinstance(self.architecture, dict) and self.architecture.get("architecture") == (
            "custom"
        )
