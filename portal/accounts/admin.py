"""Admin for teams (editable: an operator manages membership), quotas (read-only: they are
set, audited, through the teams pages and the API) and tokens (revoke only)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from portal.accounts.models import ApiToken, Quota, Team
from portal.accounts.services import api_token_revoke
from portal.lib.admin import ReadOnlyAdmin


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    list_display = ["name", "member_count", "created_at"]
    search_fields = ["name", "members__username"]
    filter_horizontal = ["members"]
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).annotate(member_count=Count("members"))

    @admin.display(description="members", ordering="member_count")
    def member_count(self, team: Team) -> int:
        return int(getattr(team, "member_count", 0))


class TokenStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [("usable", "Usable"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> QuerySet[ApiToken]:
        now = timezone.now()
        unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        if self.value() == "usable":
            return queryset.filter(unexpired, revoked_at__isnull=True)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True).exclude(unexpired)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin[ApiToken]):
    list_display = [
        "name",
        "user",
        "prefix",
        "scope",
        "usable",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [TokenStatusFilter, "scope"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    date_hierarchy = "created_at"
    # The digest stays out of the page: it is a password hash in all but name.
    exclude = ["digest"]
    actions = ["revoke"]

    @admin.display(boolean=True)
    def usable(self, token: ApiToken) -> bool:
        return token.is_usable()

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        tokens = list(queryset.filter(revoked_at__isnull=True))
        for token in tokens:
            api_token_revoke(token=token)
        self.message_user(request, f"Revoked {len(tokens)} token(s).", messages.SUCCESS)


@admin.register(Quota)
class QuotaAdmin(ReadOnlyAdmin[Quota]):
    list_display = [
        "__str__",
        "max_gpus",
        "max_cpu_slots",
        "max_running_jobs",
        "max_queued_jobs",
        "max_gpu_hours",
        "max_cpu_slot_hours",
        "min_priority",
        "max_priority",
        "updated_at",
    ]
    list_select_related = ["user", "team"]
    search_fields = ["user__username", "team__name"]
    list_filter = [("team", admin.EmptyFieldListFilter)]
