"""How jobs, attempts, metric points and log lines look in the REST API (`/api/v1/`).

Input for a new job is `portal.jobs.schemas.JobRequest` (pydantic), not a serializer here; the
serializers below only answer, plus the small ones that parse query strings.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet, prefetch_related_objects
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.catalog.models import Dataset, ModelArchitecture
from portal.jobs.events import MetricPointPayload
from portal.jobs.models import Attempt, Checkpoint, Job, MetricPoint
from portal.jobs.phases import PHASES, attempt_marks, queued_times
from portal.jobs.schemas import JobRequest
from portal.jobs.selectors import checkpoint_path, why_pending_visible
from portal.jobs.usage import UsageDict, job_usage
from portal.lib.realtime import json_finite

METRICS_PAGE_MAX = 5000
# Ids and cursors are PostgreSQL bigints; a larger value is a 400, not a DataError.
BIGINT_MAX = 2**63 - 1


class DatasetRefSerializer(serializers.ModelSerializer[Dataset]):
    class Meta:
        model = Dataset
        fields = ["id", "name"]
        read_only_fields = fields


class ModelRefSerializer(serializers.ModelSerializer[ModelArchitecture]):
    class Meta:
        model = ModelArchitecture
        fields = ["id", "name"]
        read_only_fields = fields


class JobResourcesSerializer(serializers.ModelSerializer[Job]):
    class Meta:
        model = Job
        fields = ["nodes", "procs_per_node", "gpus_per_node"]
        read_only_fields = fields


class AttemptPhaseSerializer(serializers.Serializer[Any]):
    phase = serializers.ChoiceField(
        choices=PHASES,
        help_text="queued (submitted or requeued), placed (the scheduler pass), then each "
        "node's received, dataset_fetched, torchrun_started, rendezvous_done, first_step, "
        "last_step, and exited (docs/telemetry.md, Phases).",
    )
    at = serializers.DateTimeField()
    node_rank = serializers.IntegerField(
        allow_null=True, help_text="The node that reported it; null for the portal's own."
    )


class AttemptSerializer(serializers.ModelSerializer[Attempt]):
    nodes = serializers.SerializerMethodField(help_text="Node names, in node-rank order.")
    phases = serializers.SerializerMethodField(
        help_text="Where the attempt's time went, in phase order (each node's own time)."
    )

    class Meta:
        model = Attempt
        fields = [
            "id",
            "number",
            "state",
            "exit_code",
            "nodes",
            "preempted_by",
            "preempted_at",
            "phases",
        ]
        read_only_fields = fields

    def get_nodes(self, attempt: Attempt) -> list[str]:
        # Iterating `.all()` keeps the prefetch from `JobSerializer.eager` in play.
        return [placement.node.name for placement in attempt.placements.all()]

    @extend_schema_field(AttemptPhaseSerializer(many=True))
    def get_phases(self, attempt: Attempt) -> list[dict[str, Any]]:
        # `JobSerializer` passes when each attempt was queued: it needs the attempt before.
        queued_at = self.context.get("queued_at", {}).get(attempt.pk, attempt.created_at)
        marks = attempt_marks(attempt, queued_at=queued_at)
        return list(AttemptPhaseSerializer([vars(mark) for mark in marks], many=True).data)


class UsageSerializer(serializers.Serializer[Any]):
    gpu_hours = serializers.FloatField()
    cpu_slot_hours = serializers.FloatField()


class JobAheadSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    owner = serializers.CharField(
        allow_null=True, help_text="Only for a job you may see; null otherwise."
    )
    size = serializers.CharField(
        allow_null=True, help_text="`2 x 8 GPUs`; only for a job you may see, null otherwise."
    )


class ConstraintCountSerializer(serializers.Serializer[Any]):
    constraint = serializers.ChoiceField(
        choices=["pool", "gpu_model", "labels", "node_state", "size", "free", "reservation"]
    )
    # A field named like Field.label, which the stubs type as the label's text.
    label = serializers.CharField()  # type: ignore[assignment]
    nodes = serializers.IntegerField(help_text="How many nodes fail this requirement.")


class QuotaLimitSerializer(serializers.Serializer[Any]):
    scope = serializers.ChoiceField(choices=["user", "team"])
    holder = serializers.CharField()
    limit = serializers.CharField()
    allowed = serializers.FloatField()
    used = serializers.FloatField()
    asked = serializers.FloatField()
    headroom = serializers.FloatField()
    message = serializers.CharField()


class ReservationSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    nodes = serializers.ListField(child=serializers.CharField())


class WhyPendingSerializer(serializers.Serializer[Any]):
    """Why a queued job waits, as of the last scheduler pass (`portal.jobs.why_pending`)."""

    waiting_for = serializers.ChoiceField(
        choices=["unrunnable", "backoff", "quota", "nodes", "capacity", "reservation"]
    )
    queue = serializers.CharField(help_text="The pool (or `a+b`: pools) whose queue it is in.")
    position = serializers.IntegerField(help_text="1: the next job of its queue.")
    queue_length = serializers.IntegerField()
    ahead = JobAheadSerializer(many=True, help_text="The nearest jobs ahead, nearest last.")
    nodes_total = serializers.IntegerField()
    nodes_fit = serializers.IntegerField(help_text="Nodes that could take it now.")
    constraints = ConstraintCountSerializer(many=True)
    quota = QuotaLimitSerializer(allow_null=True, help_text="The binding quota limit.")
    limits = QuotaLimitSerializer(many=True, help_text="Every limit that applies.")
    reservation = ReservationSerializer(allow_null=True)
    estimated_start = serializers.DateTimeField(allow_null=True)


class DryRunQuerySerializer(serializers.Serializer[Any]):
    dry_run = serializers.BooleanField(default=False)


class PlanPreviewSerializer(serializers.Serializer[Any]):
    """The answer of `POST /api/v1/jobs/?dry_run=true` (`portal.jobs.preview.PlanPreview`)."""

    would_start = serializers.BooleanField(help_text="Whether the next pass would start it.")
    nodes = serializers.ListField(
        child=serializers.CharField(), help_text="Where it would start (empty: it would wait)."
    )
    reason = serializers.CharField()
    jobs_ahead = serializers.IntegerField(help_text="Jobs ahead of it in its queue.")
    binding_limit = QuotaLimitSerializer(allow_null=True)
    estimated_start = serializers.DateTimeField(allow_null=True)
    why_pending = WhyPendingSerializer(allow_null=True)


class PreemptionSerializer(serializers.Serializer[Any]):
    by_job = serializers.IntegerField(help_text="Id of the job it was preempted for.")
    at = serializers.DateTimeField(help_text="When the scheduler told it to stop.")
    attempt = serializers.IntegerField(help_text="Number of the attempt that was stopped.")


class JobUrlsSerializer(serializers.Serializer[Any]):
    self = serializers.URLField(help_text="This job in the API.")
    web = serializers.CharField(help_text="The job's page in the portal.")
    websocket = serializers.CharField(help_text="Path of the job's live WebSocket.")


_JOB_RELATIONS = (
    "owner",
    "team",
    "dataset",
    "model",
    "attempts__placements__node",
    "attempts__phases",
)


class JobSerializer(serializers.ModelSerializer[Job]):
    owner = serializers.CharField(source="owner.username", read_only=True)
    dataset = DatasetRefSerializer(read_only=True)
    model = ModelRefSerializer(read_only=True)
    spec = serializers.SerializerMethodField(help_text="The request as it was accepted.")
    resources = JobResourcesSerializer(source="*", read_only=True)
    attempts = serializers.SerializerMethodField()
    team = serializers.CharField(
        source="team.name", read_only=True, allow_null=True, help_text="The team it is charged to."
    )
    usage = serializers.SerializerMethodField(
        help_text="GPU-hours and CPU-slot-hours its attempts held so far (live while it runs)."
    )
    why_pending = serializers.SerializerMethodField(
        help_text="While queued: why it waits (null otherwise)."
    )
    estimated_start = serializers.SerializerMethodField(
        help_text="When it starts: the scheduler's estimate while queued (null: unknown), the "
        "time it started once it has."
    )
    last_preemption = serializers.SerializerMethodField(
        help_text="The latest time it was preempted (null if never): by which job, when."
    )
    urls = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "owner",
            "team",
            "dataset",
            "model",
            "spec",
            "resources",
            "priority",
            "max_restarts",
            "restarts",
            "preemptible",
            "preemptions",
            "last_preemption",
            "state",
            "state_reason",
            "parameter_count",
            "model_check",
            "created_at",
            "started_at",
            "finished_at",
            "stalled_at",
            "idle_at",
            "attempts",
            "usage",
            "why_pending",
            "estimated_start",
            "urls",
        ]
        read_only_fields = fields

    @staticmethod
    def eager(queryset: QuerySet[Job]) -> QuerySet[Job]:
        """`queryset` with everything this serializer touches loaded in a fixed number of
        queries, however many jobs, attempts and placements there are."""
        return queryset.select_related(*_JOB_RELATIONS[:4]).prefetch_related(*_JOB_RELATIONS[4:])

    @staticmethod
    def eager_one(job: Job) -> None:
        """Load what this serializer touches onto one job already fetched."""
        prefetch_related_objects([job], *_JOB_RELATIONS)

    @extend_schema_field(UsageSerializer)
    def get_usage(self, job: Job) -> UsageDict:
        # From the prefetched attempts and placements: no query per job.
        return job_usage(job, now=timezone.now()).as_dict()

    # drf-spectacular's pydantic extension renders the model; its stubs only know serializers.
    @extend_schema_field(JobRequest)  # type: ignore[arg-type]
    def get_spec(self, job: Job) -> dict[str, Any]:
        return dict(job.spec)

    def _why_pending(self) -> dict[int, dict[str, Any] | None]:
        # Every job this serializer answers, in one query for the jobs ahead of them all.
        context = cast(dict[str, Any], self.context)
        if "why_pending" not in context:
            root = self.root.instance
            listed = list(root) if isinstance(root, (list, QuerySet)) else [root]
            jobs = [job for job in listed if isinstance(job, Job)]
            request = context.get("request")
            user = request.user if request is not None else AnonymousUser()
            records = why_pending_visible(user=user, records=[job.why_pending for job in jobs])
            context["why_pending"] = {
                job.pk: record for job, record in zip(jobs, records, strict=True)
            }
        cached: dict[int, dict[str, Any] | None] = context["why_pending"]
        return cached

    @extend_schema_field(WhyPendingSerializer(allow_null=True))
    def get_why_pending(self, job: Job) -> dict[str, Any] | None:
        if job.state != Job.State.QUEUED or not job.why_pending:
            return None
        return self._why_pending().get(job.pk)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_estimated_start(self, job: Job) -> str | None:
        if job.state != Job.State.QUEUED:
            return job.started_at.isoformat() if job.started_at else None
        if not isinstance(job.why_pending, dict):
            return None
        estimate = job.why_pending.get("estimated_start")
        return str(estimate) if estimate else None

    @extend_schema_field(PreemptionSerializer(allow_null=True))
    def get_last_preemption(self, job: Job) -> dict[str, Any] | None:
        # From the prefetched attempts (`eager`): no query per job.
        preempted = [a for a in job.attempts.all() if a.preempted_by_id is not None]
        if not preempted:
            return None
        last = max(preempted, key=lambda a: a.number)
        return {"by_job": last.preempted_by_id, "at": last.preempted_at, "attempt": last.number}

    @extend_schema_field(AttemptSerializer(many=True))
    def get_attempts(self, job: Job) -> list[dict[str, Any]]:
        attempts = list(job.attempts.all())
        context = {**self.context, "queued_at": queued_times(job, attempts)}
        return list(AttemptSerializer(attempts, many=True, context=context).data)

    @extend_schema_field(JobUrlsSerializer)
    def get_urls(self, job: Job) -> dict[str, str]:
        path = reverse("jobs-api:detail", kwargs={"job_id": job.pk})
        request = self.context.get("request")
        return {
            "self": request.build_absolute_uri(path) if request is not None else path,
            "web": reverse("jobs:detail", kwargs={"job_id": job.pk}),
            # Channels routes are not reversible; this mirrors portal/routing.py.
            "websocket": f"/ws/jobs/{job.pk}/",
        }


# `?ordering=` values and the columns they sort by; the id breaks ties so pages are stable.
JOB_ORDERINGS = {
    key: column
    for field in ("created_at", "priority", "state", "name", "id")
    for key, column in ((field, field), (f"-{field}", f"-{field}"))
}


class JobListQuerySerializer(serializers.Serializer[Any]):
    state = serializers.ChoiceField(
        choices=Job.State.choices, required=False, help_text="Only jobs in this state."
    )
    owner = serializers.CharField(
        required=False, max_length=150, help_text="Only jobs of the user with this username."
    )
    dataset = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="Only jobs on this dataset id."
    )
    model = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="Only jobs of this model id."
    )
    name = serializers.CharField(
        required=False, max_length=200, help_text="Only jobs whose name contains this (any case)."
    )
    ordering = serializers.ChoiceField(
        choices=sorted(JOB_ORDERINGS),
        default="-created_at",
        help_text="Sort by this field; a leading `-` sorts descending. Default: newest first.",
    )


class FiniteFloatField(serializers.FloatField):
    """A stored float as JSON: NaN and infinities (a diverged loss) become null, as on the
    job's WebSocket, rather than making the whole answer fail to render."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, allow_null=True, **kwargs)

    # The stubs type FloatField's representation as str; DRF answers a float.
    def to_representation(self, value: Any) -> float | None:  # type: ignore[override]
        number: float | None = json_finite(super().to_representation(value))
        return number


class MetricPointSerializer(serializers.ModelSerializer[MetricPoint]):
    # The attempt's id, as on the job's WebSocket, so one cursor serves both.
    attempt = serializers.IntegerField(
        source="attempt_id", read_only=True, help_text="Id of the attempt (`attempts[].id`)."
    )
    loss = FiniteFloatField(help_text="Null when the loss was NaN or infinite (diverged).")
    accuracy = FiniteFloatField(help_text="Null when not measured, or not finite.")
    ts = serializers.DateTimeField(source="reported_at", read_only=True)

    class Meta:
        model = MetricPoint
        # The fields of the point a job's WebSocket sends (`metric_point_payload`, which ingest
        # and the backfill use), so one shape and one cursor serve both; only `ts` is written
        # differently here, as ISO 8601.
        fields = list(MetricPointPayload.__annotations__)
        read_only_fields = fields


class MetricsCursorSerializer(serializers.Serializer[Any]):
    after_attempt = serializers.IntegerField(
        min_value=0,
        max_value=BIGINT_MAX,
        default=0,
        help_text="Attempt id of the last point you have.",
    )
    after_seq = serializers.IntegerField(min_value=-1, max_value=BIGINT_MAX, default=-1)


class MetricsQuerySerializer(MetricsCursorSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=METRICS_PAGE_MAX, default=1000)


class MetricsPageSerializer(serializers.Serializer[Any]):
    points = MetricPointSerializer(many=True)
    next = MetricsCursorSerializer(
        help_text="Pass these as query parameters to get the points after this page."
    )
    has_more = serializers.BooleanField(
        help_text="True when more points are stored already; false means you are caught up."
    )


class CheckpointSerializer(serializers.ModelSerializer[Checkpoint]):
    attempt = serializers.IntegerField(source="attempt_id", read_only=True)
    attempt_number = serializers.IntegerField(source="attempt.number", read_only=True)
    val_loss = FiniteFloatField()
    val_accuracy = FiniteFloatField()
    available = serializers.SerializerMethodField(
        help_text="Whether the file is still there (the trainer keeps the newest few and the best)."
    )
    download = serializers.SerializerMethodField(help_text="Path that streams the file.")

    class Meta:
        model = Checkpoint
        fields = [
            "id",
            "attempt",
            "attempt_number",
            "epoch",
            "step",
            "name",
            "sha256",
            "size_bytes",
            "val_loss",
            "val_accuracy",
            "is_best",
            "created_at",
            "available",
            "download",
        ]
        read_only_fields = fields

    def get_available(self, checkpoint: Checkpoint) -> bool:
        return checkpoint_path(checkpoint) is not None

    def get_download(self, checkpoint: Checkpoint) -> str:
        return reverse(
            "jobs-api:checkpoint-download",
            kwargs={"job_id": checkpoint.job_id, "checkpoint_id": checkpoint.pk},
        )
