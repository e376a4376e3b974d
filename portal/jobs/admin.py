"""Admin for jobs and what they produced: all read-only, since every state move is a service's
conditional update with events on commit. Cancelling is an action that calls `job_cancel`.

Metric points and log lines are the largest tables: their change lists skip the full count and
the date drill-down, and filter by job through the URL (`?job=<id>`, linked from a job's page).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from portal.accounts.http import AuthenticatedHttpRequest
from portal.jobs.models import (
    Attempt,
    AttemptPhase,
    Checkpoint,
    Job,
    JobLogVolume,
    JobTemplate,
    LogLine,
    MetricBlock,
    MetricPoint,
    Placement,
    RankSample,
)
from portal.jobs.services import job_cancel
from portal.lib.admin import ReadOnlyAdmin, ReadOnlyTabularInline

_ATTEMPT_COLUMNS = (
    "number",
    "state",
    "reason",
    "exit_code",
    "master_addr",
    "started_at",
    "finished_at",
    "preempted_by",
    "preempted_at",
)
_PLACEMENT_COLUMNS = (
    "node_rank",
    "node",
    "slots",
    "gpus",
    "exit_code",
    "started_at",
    "finished_at",
)


class AttemptInline(ReadOnlyTabularInline[Attempt, Job]):
    model = Attempt
    fk_name = "job"
    fields = readonly_fields = _ATTEMPT_COLUMNS


class PlacementInline(ReadOnlyTabularInline[Placement, Attempt]):
    model = Placement
    fields = readonly_fields = _PLACEMENT_COLUMNS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Placement]:
        # Each row shows its node and is titled with str(placement), which names the attempt.
        return super().get_queryset(request).select_related("attempt", "node")


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin[Job]):
    list_display = [
        "id",
        "name",
        "owner",
        "team",
        "state",
        "priority",
        "nodes",
        "slots_per_node",
        "restarts",
        "preemptions",
        "parameter_count",
        "created_at",
        "finished_at",
    ]
    list_filter = [
        "state",
        ("owner", admin.RelatedOnlyFieldListFilter),
        "team",
        ("attempts__placements__node", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["owner", "team"]
    search_fields = ["name", "owner__username", "=uid"]
    date_hierarchy = "created_at"
    readonly_fields = ["telemetry"]
    inlines = [AttemptInline]
    actions = ["cancel"]

    @admin.display(description="telemetry")
    def telemetry(self, job: Job) -> str:
        metrics = reverse("admin:jobs_metricpoint_changelist")
        logs = reverse("admin:jobs_logline_changelist")
        return format_html(
            '<a href="{}?job={}">metric points</a> · <a href="{}?job={}">log lines</a>',
            metrics,
            job.pk,
            logs,
            job.pk,
        )

    @admin.action(description="Cancel selected jobs")
    def cancel(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Job]) -> None:
        cancelled = refused = 0
        for job in queryset.exclude(state__in=Job.TERMINAL):
            try:
                job_cancel(user=request.user, job=job)
            except PermissionDenied:
                refused += 1
            else:
                cancelled += 1
        self.message_user(request, f"Cancelling {cancelled} job(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, f"Not allowed to cancel {refused} job(s).", messages.ERROR)


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdmin[Attempt]):
    list_display = ["id", "job", "number", "state", "exit_code", "created_at", "finished_at"]
    list_filter = ["state", ("placements__node", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["job"]
    search_fields = ["job__name", "reason"]
    date_hierarchy = "created_at"
    inlines = [PlacementInline]


@admin.register(Placement)
class PlacementAdmin(ReadOnlyAdmin[Placement]):
    list_display = [
        "id",
        "attempt",
        "node",
        "node_rank",
        "slots",
        "gpus",
        "exit_code",
        "started_at",
        "finished_at",
    ]
    list_filter = ["node", "attempt__state"]
    list_select_related = ["attempt", "node"]
    search_fields = ["node__name", "attempt__job__name"]


@admin.register(MetricPoint)
class MetricPointAdmin(ReadOnlyAdmin[MetricPoint]):
    list_display = ["job", "attempt", "seq", "split", "step", "epoch", "loss", "accuracy"]
    list_filter = ["split"]
    list_select_related = ["job", "attempt"]
    search_fields = ["job__name"]
    show_full_result_count = False


@admin.register(MetricBlock)
class MetricBlockAdmin(ReadOnlyAdmin[MetricBlock]):
    list_display = ["job", "attempt", "block", "split", "count", "first_at", "loss_min", "loss_max"]
    list_filter = ["split"]
    list_select_related = ["job", "attempt"]
    search_fields = ["job__name"]
    show_full_result_count = False


@admin.register(LogLine)
class LogLineAdmin(ReadOnlyAdmin[LogLine]):
    list_display = ["job", "attempt", "node_rank", "rank", "seq", "stream", "line"]
    list_filter = ["stream"]
    list_select_related = ["job", "attempt"]
    search_fields = ["job__name", "line"]
    show_full_result_count = False


@admin.register(AttemptPhase)
class AttemptPhaseAdmin(ReadOnlyAdmin[AttemptPhase]):
    list_display = ["attempt", "node_rank", "phase", "at"]
    list_select_related = ["attempt"]
    list_filter = ["phase"]
    show_full_result_count = False


@admin.register(RankSample)
class RankSampleAdmin(ReadOnlyAdmin[RankSample]):
    list_display = [
        "job",
        "attempt",
        "rank",
        "step",
        "step_time_s",
        "samples_per_s",
        "gpu_memory_used",
    ]
    list_select_related = ["job", "attempt"]
    search_fields = ["job__name"]
    show_full_result_count = False


@admin.register(JobLogVolume)
class JobLogVolumeAdmin(ReadOnlyAdmin[JobLogVolume]):
    list_display = ["job", "lines", "bytes", "truncated_at"]
    list_filter = [("truncated_at", admin.EmptyFieldListFilter)]
    list_select_related = ["job"]
    search_fields = ["job__name"]


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin[Checkpoint]):
    list_display = [
        "job",
        "attempt",
        "name",
        "epoch",
        "step",
        "val_loss",
        "val_accuracy",
        "is_best",
        "size_bytes",
        "created_at",
    ]
    list_filter = ["is_best"]
    list_select_related = ["job", "attempt"]
    search_fields = ["job__name", "name", "=sha256"]
    date_hierarchy = "created_at"


@admin.register(JobTemplate)
class JobTemplateAdmin(ReadOnlyAdmin[JobTemplate]):
    """Read-only: templates are saved through `portal.jobs.job_templates` (validated specs)."""

    list_display = ("name", "owner", "team", "updated_at")
    list_filter = ("team",)
    search_fields = ("name", "owner__username", "team__name")
    list_select_related = ("owner", "team")
