"""Admin for datasets and models: who owns and sees them is editable; what they are is not.

A dataset's file, checksum, columns and state come from validation, and a model's family and
defaults are what submitted jobs were checked against, so those fields are read-only. Rows are
created by the catalog (uploads, the built-ins) and never deleted here (jobs refer to them).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Permission, User
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import datasets_requeue


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin[Dataset]):
    list_display = [
        "name",
        "version",
        "format",
        "state",
        "owner",
        "team",
        "is_public",
        "num_rows",
        "created_at",
    ]
    list_filter = [
        "state",
        "is_public",
        "format",
        "task",
        ("owner", admin.RelatedOnlyFieldListFilter),
        "team",
    ]
    list_select_related = ["owner", "team"]
    search_fields = ["name", "slug", "uri", "owner__username"]
    date_hierarchy = "created_at"
    raw_id_fields = ["owner"]
    actions = ["validate_again"]
    readonly_fields = [
        "slug",
        "version",
        "state",
        "state_reason",
        "uri",
        "filename",
        "sha256",
        "size_bytes",
        "format",
        "task",
        "target",
        "preprocessing",
        "features",
        "classes",
        "input_shape",
        "num_rows",
        "target_shift",
        "target_scale",
        "schema",
        "preview",
        "chart",
        "created_at",
        "validating_since",
        "validated_at",
    ]

    @admin.action(description="Validate again (stuck, or failed unexpectedly with its file)")
    def validate_again(self, request: HttpRequest, queryset: QuerySet[Dataset]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        queued = datasets_requeue(dataset_ids=ids, stale_after=timedelta(0))
        self.message_user(
            request,
            f"Queued validation of {len(queued)} of {len(ids)} dataset versions.",
            messages.SUCCESS if queued else messages.WARNING,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Dataset | None = None) -> bool:
        return False


@admin.register(ModelArchitecture)
class ModelArchitectureAdmin(admin.ModelAdmin[ModelArchitecture]):
    list_display = ["name", "slug", "family", "owner", "team", "is_public", "created_at"]
    list_filter = ["family", "is_public", ("owner", admin.RelatedOnlyFieldListFilter), "team"]
    list_select_related = ["owner", "team"]
    search_fields = ["name", "slug", "owner__username"]
    raw_id_fields = ["owner"]
    readonly_fields = [
        "slug",
        "family",
        "default_params",
        "code_uri",
        "code_sha256",
        "created_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: ModelArchitecture | None = None
    ) -> bool:
        return False


def _run_custom_code() -> Permission:
    return Permission.objects.get(content_type__app_label="catalog", codename="run_custom_code")


class CustomCodeUserAdmin(UserAdmin[User]):
    """Django's user admin, plus one-click grant and revoke of `catalog.run_custom_code` (who
    may upload and train custom model code) and a filter for who holds it directly."""

    actions = ["grant_custom_code", "revoke_custom_code"]
    list_filter = [*UserAdmin.list_filter, "user_permissions"]

    @admin.action(description="Allow to upload and train custom model code")
    def grant_custom_code(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        permission = _run_custom_code()
        for user in queryset:
            user.user_permissions.add(permission)
        self.message_user(
            request, f"{queryset.count()} user(s) may now upload model code.", messages.SUCCESS
        )

    @admin.action(description="Stop allowing custom model code")
    def revoke_custom_code(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        permission = _run_custom_code()
        for user in queryset:
            user.user_permissions.remove(permission)
        self.message_user(
            request,
            f"{queryset.count()} user(s) may no longer upload model code.",
            messages.SUCCESS,
        )


admin.site.unregister(User)
admin.site.register(User, CustomCodeUserAdmin)
