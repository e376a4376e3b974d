"""Admin for searches and trials: shown, filtered and searched; the one write is the "cancel"
action, which calls `search_cancel` (trials' jobs are cancelled through the jobs service)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.experiments.models import Search, Trial
from portal.experiments.services import search_cancel
from portal.lib.admin import ReadOnlyAdmin, ReadOnlyTabularInline


class TrialInline(ReadOnlyTabularInline[Trial, Search]):
    model = Trial
    fields = ["number", "job", "state", "best_value", "final_value", "pruned_step", "params"]
    readonly_fields = [
        "number",
        "job",
        "state",
        "best_value",
        "final_value",
        "pruned_step",
        "params",
    ]
    ordering = ["number"]


@admin.register(Search)
class SearchAdmin(ReadOnlyAdmin[Search]):
    list_display = ["name", "owner", "team", "method", "pruner", "metric", "state", "created_at"]
    list_filter = ["state", "method", "pruner", ("owner", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["owner", "team"]
    search_fields = ["name", "owner__username"]
    date_hierarchy = "created_at"
    inlines = [TrialInline]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected searches and their trials")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Search]) -> None:
        assert request.user.is_authenticated
        for search in queryset.exclude(state__in=Search.TERMINAL):
            search_cancel(user=request.user, search=search)
        messages.success(request, "Cancelled.")


@admin.register(Trial)
class TrialAdmin(ReadOnlyAdmin[Trial]):
    list_display = ["search", "number", "job", "state", "best_value", "pruned_step"]
    list_filter = ["state"]
    list_select_related = ["search", "job"]
    search_fields = ["search__name"]
