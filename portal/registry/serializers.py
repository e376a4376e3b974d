"""How model versions look in the REST API, and the bodies its writes take."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from portal.lib.realtime import json_finite
from portal.registry.models import ModelVersion
from workers.messages import PREDICT_MAX_ROWS

BIGINT_MAX = 2**63 - 1


class ModelVersionUrlsSerializer(serializers.Serializer[Any]):
    self = serializers.CharField(help_text="This version in the API.")
    web = serializers.CharField(help_text="The version's page in the portal.")
    predict = serializers.CharField(help_text="POST rows here for predictions.")
    safetensors = serializers.CharField(help_text="Download the weights (safetensors).")
    torchscript = serializers.CharField(help_text="Download the TorchScript program.")
    job = serializers.CharField(help_text="The job that trained it, in the API.")


class ModelVersionSerializer(serializers.ModelSerializer[ModelVersion]):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.CharField(source="team.name", read_only=True, allow_null=True)
    job = serializers.SerializerMethodField()
    dataset = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()
    urls = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        # Storage URIs stay inside the cluster: the files are downloaded through the API.
        fields = [
            "id",
            "name",
            "version",
            "owner",
            "team",
            "job",
            "dataset",
            "architecture",
            "input_shape",
            "outputs",
            "task",
            "classes",
            "hyperparameters",
            "metrics",
            "files",
            "urls",
            "created_at",
        ]
        read_only_fields = fields

    def get_job(self, version: ModelVersion) -> dict[str, Any]:
        return {
            "id": version.job_id,
            "name": version.job.name,
            "attempt": version.attempt_id,
            "checkpoint": version.checkpoint_name,
            "checkpoint_sha256": version.checkpoint_sha256,
        }

    def get_dataset(self, version: ModelVersion) -> dict[str, Any]:
        dataset = version.dataset
        return {
            "id": dataset.pk,
            "name": dataset.name,
            "version": dataset.version,
            "sha256": dataset.sha256,
            "format": dataset.format,
            "target": dataset.target,
            "preprocessing": dataset.preprocessing,
        }

    def get_metrics(self, version: ModelVersion) -> dict[str, Any]:
        metrics: dict[str, Any] = json_finite(
            {
                "epoch": version.epoch,
                "val_loss": version.val_loss,
                "val_accuracy": version.val_accuracy,
            }
        )
        return metrics

    def get_files(self, version: ModelVersion) -> dict[str, Any]:
        return {
            "safetensors": {
                "sha256": version.safetensors_sha256,
                "size_bytes": version.safetensors_size,
            },
            "torchscript": {
                "sha256": version.torchscript_sha256,
                "size_bytes": version.torchscript_size,
            },
            "manifest_sha256": version.manifest_sha256,
        }

    def get_urls(self, version: ModelVersion) -> dict[str, str]:
        pk = version.pk
        return {
            "self": reverse("registry-api:detail", args=[pk]),
            "web": reverse("registry:detail", args=[pk]),
            "predict": reverse("registry-api:predict", args=[pk]),
            "safetensors": reverse("registry-api:file", args=[pk, "safetensors"]),
            "torchscript": reverse("registry-api:file", args=[pk, "torchscript"]),
            "job": reverse("jobs-api:detail", args=[version.job_id]),
        }


class RegisterSerializer(serializers.Serializer[Any]):
    job = serializers.IntegerField(
        min_value=1, max_value=BIGINT_MAX, help_text="Id of a succeeded job you can see."
    )
    name = serializers.CharField(max_length=200, help_text="The model's name; a new version.")


class PredictBodySerializer(serializers.Serializer[Any]):
    rows = serializers.ListField(
        child=serializers.JSONField(),
        min_length=1,
        max_length=PREDICT_MAX_ROWS,
        help_text="Rows as the dataset has them: objects keyed by feature name for tables, "
        f"nested lists for .npz and images; at most {PREDICT_MAX_ROWS}.",
    )


class PredictionsSerializer(serializers.Serializer[Any]):
    predictions = serializers.ListField(
        child=serializers.DictField(),
        help_text='One per row, in order: `{"label", "probabilities"}` for classification, '
        '`{"value"}` for regression.',
    )
