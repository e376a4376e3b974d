"""How datasets and model architectures look in the REST API."""

from __future__ import annotations

from rest_framework import serializers

from portal.catalog.models import Dataset, ModelArchitecture


class DatasetSerializer(serializers.ModelSerializer[Dataset]):
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True)
    team = serializers.CharField(source="team.name", read_only=True, allow_null=True)

    class Meta:
        model = Dataset
        # The storage URI stays inside the cluster: it names paths on the shared filesystem.
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "owner",
            "team",
            "is_public",
            "state",
            "state_reason",
            "format",
            "task",
            "target",
            "features",
            "input_shape",
            "classes",
            "num_rows",
            "size_bytes",
            "sha256",
            "created_at",
        ]
        read_only_fields = fields


class ModelArchitectureSerializer(serializers.ModelSerializer[ModelArchitecture]):
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True)
    team = serializers.CharField(source="team.name", read_only=True, allow_null=True)

    class Meta:
        model = ModelArchitecture
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "family",
            "default_params",
            "owner",
            "team",
            "is_public",
            "created_at",
        ]
        read_only_fields = fields
