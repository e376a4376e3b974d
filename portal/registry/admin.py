"""Admin for model versions: shown, filtered and searched, never written here.

A version is made by `model_version_register` (which checks the export and records an audit
entry); its lineage and checksums are facts, so the admin only reads them.
"""

from __future__ import annotations

from django.contrib import admin

from portal.lib.admin import ReadOnlyAdmin
from portal.registry.models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin[ModelVersion]):
    list_display = [
        "name",
        "version",
        "owner",
        "team",
        "job",
        "dataset",
        "task",
        "val_accuracy",
        "val_loss",
        "created_at",
    ]
    list_filter = ["task", ("owner", admin.RelatedOnlyFieldListFilter), "team", "created_at"]
    list_select_related = ["owner", "team", "job", "dataset"]
    search_fields = ["name", "owner__username", "job__name", "safetensors_sha256"]
    date_hierarchy = "created_at"
