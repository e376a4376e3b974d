"""How datasets and model architectures look in the REST API, and what an upload sends."""

from __future__ import annotations

from typing import Any, cast

import msgspec
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import DEFAULT_PREPROCESSING, IMPLIED_TARGETS, format_from_filename
from portal.lib.text import text_problem
from workers.messages import PreprocessSpec

DATASET_FIELDS = [
    "id",
    "slug",
    "name",
    "version",
    "description",
    "owner",
    "team",
    "is_public",
    "state",
    "state_reason",
    "format",
    "task",
    "target",
    "classes",
    "num_rows",
    "filename",
    "size_bytes",
    "sha256",
    "created_at",
    "validated_at",
    "urls",
]


class DatasetUrlsSerializer(serializers.Serializer[Dataset]):
    web = serializers.CharField(help_text="The dataset's page.")
    api = serializers.CharField(help_text="This resource.")


class DatasetSerializer(serializers.ModelSerializer[Dataset]):
    # Not a SlugField's pattern: an upload has no slug (empty), only the built-ins do.
    slug = serializers.CharField(read_only=True, help_text="A built-in's slug; empty otherwise.")
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True)
    team = serializers.CharField(source="team.name", read_only=True, allow_null=True)
    classes = serializers.ListField(child=serializers.CharField(), read_only=True)
    urls = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        # The storage URI stays inside the cluster: it names paths on the shared filesystem.
        fields = DATASET_FIELDS
        read_only_fields = fields

    @extend_schema_field(DatasetUrlsSerializer)
    def get_urls(self, dataset: Dataset) -> dict[str, str]:
        return {
            "web": reverse("catalog:dataset", args=[dataset.pk]),
            "api": reverse("catalog-api:dataset", args=[dataset.pk]),
        }


class DatasetVersionSerializer(serializers.ModelSerializer[Dataset]):
    class Meta:
        model = Dataset
        fields = ["id", "version", "state", "num_rows", "created_at"]
        read_only_fields = fields


class DatasetDetailSerializer(DatasetSerializer):
    versions = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            *DATASET_FIELDS,
            "preprocessing",
            "features",
            "input_shape",
            "target_shift",
            "target_scale",
            "schema",
            "preview",
            "chart",
            "versions",
        ]
        read_only_fields = fields

    @extend_schema_field(DatasetVersionSerializer(many=True))
    def get_versions(self, dataset: Dataset) -> list[dict[str, Any]]:
        versions = self.context.get("versions", [])
        data = DatasetVersionSerializer(versions, many=True).data
        return cast(list[dict[str, Any]], data)


class DatasetUploadSerializer(serializers.Serializer[Any]):
    """The multipart form of an upload. Only `file` is required; the rest have defaults."""

    file = serializers.FileField(help_text="The dataset file (CSV, Parquet, .npz or a zip).")
    name = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Uploading under a name you already have makes its next version; "
        "default: the file's name without its extension.",
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    format = serializers.ChoiceField(
        choices=Dataset.Format.choices,
        required=False,
        help_text="Default: from the file's extension (.csv, .parquet, .npz, .zip).",
    )
    task = serializers.ChoiceField(choices=Dataset.Task.choices, default="classification")
    target = serializers.CharField(
        required=False,
        max_length=200,
        help_text="The column to predict (CSV, Parquet); `y` for .npz and `label` (the "
        "folder names) for images.",
    )
    missing = serializers.ChoiceField(
        choices=["drop", "impute"], default=DEFAULT_PREPROCESSING.missing
    )
    normalization = serializers.ChoiceField(
        choices=["minmax", "standard", "none"], default=DEFAULT_PREPROCESSING.normalization
    )
    split_seed = serializers.IntegerField(
        min_value=0, max_value=2**31 - 1, default=DEFAULT_PREPROCESSING.split_seed
    )
    val_fraction = serializers.FloatField(
        min_value=0.0, max_value=1.0, default=DEFAULT_PREPROCESSING.val_fraction
    )
    test_fraction = serializers.FloatField(
        min_value=0.0, max_value=1.0, default=DEFAULT_PREPROCESSING.test_fraction
    )

    def validate_name(self, value: str) -> str:
        return _safe(value.strip())

    def validate_target(self, value: str) -> str:
        return _safe(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        filename: str = getattr(attrs["file"], "name", "") or ""
        errors: dict[str, str] = {}
        fmt = attrs.get("format") or format_from_filename(filename)
        if fmt is None:
            errors["format"] = (
                f"Cannot tell the format of {filename!r} from its extension; choose one of "
                "csv, parquet, npz, images."
            )
        target = attrs.get("target", "")
        if fmt in IMPLIED_TARGETS:
            # The file names the target of these formats (`y`, the folder names).
            target = IMPLIED_TARGETS[fmt]
        elif fmt is not None and not target:
            errors["target"] = "Name the column to predict."
        name = attrs.get("name") or _safe(filename.rsplit(".", 1)[0].strip()[:200])
        if not name:
            errors["name"] = "Give the dataset a name."
        try:
            preprocessing = msgspec.convert(
                {key: attrs[key] for key in _PREPROCESS_FIELDS}, PreprocessSpec
            )
        except (msgspec.ValidationError, ValueError) as exc:
            errors["test_fraction"] = str(exc).replace("Expected", "Must be")
            preprocessing = None
        if errors:
            raise serializers.ValidationError(errors)
        return {
            **attrs,
            "format": fmt,
            "target": target,
            "name": name,
            "preprocessing": preprocessing,
        }


_PREPROCESS_FIELDS = ("missing", "normalization", "split_seed", "val_fraction", "test_fraction")


def _safe(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise serializers.ValidationError(problem)
    return value


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
