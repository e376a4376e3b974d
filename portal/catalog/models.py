from __future__ import annotations

import msgspec
from django.conf import settings
from django.db import models
from django.utils import timezone

from workers.messages import DatasetSpec, FeatureSpec, PreprocessSpec


class Dataset(models.Model):
    """One version of a named dataset: a file behind a storage URI and how it is prepared.

    Uploading under a name the owner already has makes the next version; a job pins the row
    it trained on (`Job.dataset` protects it from deletion). Validation (a control-queue task)
    fills the inferred fields and turns the row `ready` or `invalid`.
    """

    class State(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        VALIDATING = "validating", "Validating"
        READY = "ready", "Ready"
        INVALID = "invalid", "Invalid"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        PARQUET = "parquet", "Parquet"
        NPZ = "npz", "NumPy .npz"
        IMAGES = "images", "Image folders (zip)"

    class Task(models.TextChoices):
        CLASSIFICATION = "classification", "Classification"
        REGRESSION = "regression", "Regression"

    # Built-ins are found by slug; an upload's slug is blank.
    slug = models.SlugField(max_length=100, blank=True, db_index=True)
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL)
    # Built-in datasets are visible to everyone.
    is_public = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.UPLOADED)
    state_reason = models.TextField(blank=True)
    # The file as stored, and as the uploader named it.
    uri = models.CharField(max_length=2000)
    filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.CSV)
    task = models.CharField(max_length=16, choices=Task.choices, default=Task.CLASSIFICATION)
    # What the uploader chose: the target column and the preprocessing (a PreprocessSpec).
    target = models.CharField(max_length=200, blank=True)
    preprocessing = models.JSONField(default=dict)
    # What validation inferred: the node spec's fields (FeatureSpec list with the statistics,
    # classes, input shape, rows after dropping, the regression target's shift and scale) and
    # what the dataset page shows (schema, preview rows, the class-balance or target chart).
    features = models.JSONField(default=list)
    classes = models.JSONField(default=list)
    input_shape = models.JSONField(default=list)
    num_rows = models.PositiveIntegerField(default=0)
    target_shift = models.FloatField(default=0.0)
    target_scale = models.FloatField(default=1.0)
    schema = models.JSONField(default=list)
    preview = models.JSONField(default=list)
    chart = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    # When validation claimed the row (uploaded -> validating): the claim is the fencing token
    # of that run, and a claim this old with no result is re-queued (the worker died).
    validating_since = models.DateTimeField(null=True, blank=True)
    validated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name", "version"], name="dataset_owner_name_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_settled(self) -> bool:
        """Whether validation is over (ready or invalid): a page stops polling then."""
        return self.state in (self.State.READY, self.State.INVALID)

    def node_spec(self) -> DatasetSpec:
        """The `DatasetSpec` a node prepares this version with (only for a ready dataset)."""
        return DatasetSpec(
            uri=self.uri,
            sha256=self.sha256,
            format=self.format,  # type: ignore[arg-type]
            task=self.task,  # type: ignore[arg-type]
            target=self.target,
            classes=tuple(self.classes),
            features=tuple(msgspec.convert(self.features, list[FeatureSpec])),
            input_shape=tuple(self.input_shape),
            num_rows=self.num_rows,
            preprocessing=msgspec.convert(self.preprocessing, PreprocessSpec),
            target_shift=self.target_shift,
            target_scale=self.target_scale,
        )


class ModelArchitecture(models.Model):
    """A model family with its default hyperparameters, which a job may override.

    The built-ins are the `workers.messages` model Structs; a custom architecture is a user's
    Python file (`code_uri`, `code_sha256`), run only on nodes and only by users an admin
    granted `catalog.run_custom_code`.
    """

    class Family(models.TextChoices):
        LINEAR = "linear", "Logistic / linear regression"
        MLP = "mlp", "Multi-layer perceptron"
        CNN = "cnn", "Convolutional network"
        RESNET = "resnet", "ResNet"
        TRANSFORMER = "transformer", "Transformer encoder"
        CUSTOM = "custom", "Custom code"

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    family = models.CharField(max_length=16, choices=Family.choices)
    default_params = models.JSONField(default=dict)
    code_uri = models.CharField(max_length=2000, blank=True)
    code_sha256 = models.CharField(max_length=64, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL)
    is_public = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        permissions = [("run_custom_code", "Can define and train custom model code")]

    def __str__(self) -> str:
        return self.name
