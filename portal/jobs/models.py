from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class Job(models.Model):
    """A training job: what to train, with what, on how much of the cluster.

    State changes go through `portal.jobs.services` as conditional updates; `TRANSITIONS`
    lists the moves those services may make.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SCHEDULED = "scheduled", "Scheduled"
        RUNNING = "running", "Running"
        CANCELLING = "cancelling", "Cancelling"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    TERMINAL = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})
    TRANSITIONS: dict[str, frozenset[str]] = {
        State.QUEUED: frozenset({State.SCHEDULED, State.CANCELLED}),
        State.SCHEDULED: frozenset(
            {State.RUNNING, State.QUEUED, State.CANCELLING, State.SUCCEEDED, State.FAILED}
        ),
        State.RUNNING: frozenset({State.SUCCEEDED, State.FAILED, State.QUEUED, State.CANCELLING}),
        State.CANCELLING: frozenset({State.CANCELLED}),
        State.SUCCEEDED: frozenset(),
        State.FAILED: frozenset(),
        State.CANCELLED: frozenset(),
    }

    # Names the job's files in storage (checkpoints), which outlive any one database: an id
    # would be reused after a database reset and resume another job's checkpoint.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs"
    )
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL)
    name = models.CharField(max_length=200)
    dataset = models.ForeignKey("catalog.Dataset", on_delete=models.PROTECT)
    model = models.ForeignKey("catalog.ModelArchitecture", on_delete=models.PROTECT)
    # The validated request (portal.jobs.schemas.JobRequest), as submitted.
    spec = models.JSONField()
    # What the dry run before queueing said: the model's parameter count (None when it was
    # not built: custom code runs only on nodes), and a line for the job page.
    parameter_count = models.BigIntegerField(null=True, blank=True)
    model_check = models.TextField(blank=True)
    nodes = models.PositiveIntegerField(default=1)
    procs_per_node = models.PositiveIntegerField(default=1)
    gpus_per_node = models.PositiveIntegerField(default=0)
    # Where it may run: a pool (blank: any), a GPU model its nodes' GPUs must name (blank:
    # any), and labels every node must carry (`{"zone": "a"}`).
    pool = models.CharField(max_length=63, blank=True)
    gpu_model = models.CharField(max_length=100, blank=True)
    node_selector = models.JSONField(default=dict, blank=True)
    priority = models.IntegerField(default=0)
    # The longest one attempt may run (the request's, or TRAINYARD_DEFAULT_MAX_RUN_TIME_S):
    # past it the attempt is stopped with that reason; backfill and start estimates use it.
    max_run_time_s = models.PositiveIntegerField(default=24 * 3600)
    # Opted in to preemption: a higher-priority job that cannot start may stop it (after a
    # grace period to checkpoint) and requeue it to resume from its checkpoint.
    preemptible = models.BooleanField(default=False)
    # How often it was preempted (requeued without using up a restart).
    preemptions = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # Why the job is where it is: why it waits, why it failed.
    state_reason = models.TextField(blank=True)
    # While queued: why it waits, as the last scheduler pass saw it
    # (`portal.jobs.why_pending.WhyPending`: its queue position, the jobs ahead, how many nodes
    # fail each requirement, the binding quota, the start estimate); None otherwise.
    why_pending = models.JSONField(null=True, blank=True)
    # A digest of `why_pending` and `state_reason` as the pass wrote them: the next pass
    # compares thousands of records without reading them back.
    why_pending_digest = models.CharField(max_length=32, blank=True)
    max_restarts = models.PositiveIntegerField(default=0)
    restarts = models.PositiveIntegerField(default=0)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # Flags the watch task (`portal.jobs.watch`) sets and clears: since when the running job's
    # ranks stopped reporting steps (stalled), and since when its GPUs sat idle; None: not so.
    stalled_at = models.DateTimeField(null=True, blank=True)
    idle_at = models.DateTimeField(null=True, blank=True)
    # The current streak of low-utilisation samples of its GPUs: the first one's time and count.
    idle_since = models.DateTimeField(null=True, blank=True)
    idle_samples = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state", "priority", "created_at"]),
            # The job list pages by keyset on (created_at, id), newest first: for everyone
            # (admins), within one owner's or team's jobs (the visibility filter), and within
            # one state (the state filter; the dashboard's counts).
            models.Index(fields=["-created_at", "-id"], name="job_list_newest"),
            models.Index(fields=["owner", "-created_at", "-id"], name="job_list_owner"),
            models.Index(fields=["team", "-created_at", "-id"], name="job_list_team"),
            models.Index(fields=["state", "-created_at", "-id"], name="job_list_state"),
            # The dashboard's wait times: jobs started in the last hours and days.
            models.Index(fields=["started_at"], name="job_started_at"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL

    @property
    def slots_per_node(self) -> int:
        """Processes torchrun starts on each node: one per GPU, or the CPU slots asked for."""
        return self.gpus_per_node or self.procs_per_node

    @classmethod
    def can_transition(cls, current: str, target: str) -> bool:
        return target in cls.TRANSITIONS[current]


class Attempt(models.Model):
    """One placement of a job on a gang of nodes. Its id is the fencing token:
    a report that names an attempt which is no longer current is ignored."""

    class State(models.TextChoices):
        STARTING = "starting", "Starting"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        # Stopped to make room for a higher-priority job (`preempted_by`); its job is requeued.
        PREEMPTED = "preempted", "Preempted"
        LOST = "lost", "Lost"

    ACTIVE = frozenset({State.STARTING, State.RUNNING})
    TERMINAL = frozenset(
        {State.SUCCEEDED, State.FAILED, State.CANCELLED, State.PREEMPTED, State.LOST}
    )

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.STARTING)
    reason = models.TextField(blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    master_addr = models.CharField(max_length=255)
    master_port = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set when the scheduler told this attempt to stop for a waiting job (portal.jobs.preemption):
    # while it stops, that job does not preempt again.
    preempted_by = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="preempted_attempts"
    )
    preempted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="attempt_job_number_unique")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of job {self.job_id}"


class AttemptPhase(models.Model):
    """When one node of an attempt reached a phase on its way to training (an `attempt.phase`
    report: `workers.messages.NODE_PHASES`). The first report of each wins; the portal's own
    phases (queued, placed, exited) are read from the job, attempt and placements instead."""

    class Phase(models.TextChoices):
        RECEIVED = "received", "Message received"
        DATASET_FETCHED = "dataset_fetched", "Dataset fetched"
        TORCHRUN_STARTED = "torchrun_started", "torchrun started"
        RENDEZVOUS_DONE = "rendezvous_done", "Rendezvous done"
        FIRST_STEP = "first_step", "First step"
        LAST_STEP = "last_step", "Last step"

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="phases")
    node_rank = models.PositiveIntegerField()
    phase = models.CharField(max_length=20, choices=Phase.choices)
    # The node's clock, as reported.
    at = models.DateTimeField()

    class Meta:
        ordering = ["attempt", "at", "node_rank"]
        constraints = [
            models.UniqueConstraint(
                fields=["attempt", "node_rank", "phase"], name="attempt_phase_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.phase} of {self.attempt} on rank {self.node_rank}"


class Placement(models.Model):
    """The share of an attempt that runs on one node: capacity held while the attempt is active."""

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="placements")
    node = models.ForeignKey("cluster.Node", on_delete=models.PROTECT, related_name="placements")
    node_rank = models.PositiveIntegerField()
    slots = models.PositiveIntegerField()
    gpus = models.PositiveIntegerField(default=0)
    # Which of the node's GPUs (NVML indices) or CPU slots this share holds: the launcher
    # pins its ranks to them (CUDA_VISIBLE_DEVICES, CPU affinity), so two shares never meet.
    gpu_indices = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)
    cpu_indices = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["attempt", "node_rank"]
        constraints = [
            models.UniqueConstraint(
                fields=["attempt", "node_rank"], name="placement_attempt_rank_unique"
            ),
            models.UniqueConstraint(
                fields=["attempt", "node"], name="placement_attempt_node_unique"
            ),
        ]
        indexes = [
            # Capacity in use now (the dashboard, every page load) reads only the unfinished
            # placements, a handful beside the history of a busy cluster.
            models.Index(
                fields=["node"],
                name="placement_unfinished",
                condition=models.Q(finished_at__isnull=True),
            ),
            # GPU-hours over a window: placements that ended within it (or still run).
            models.Index(fields=["finished_at"], name="placement_finished_at"),
        ]

    def __str__(self) -> str:
        return f"{self.attempt} rank {self.node_rank} on {self.node_id}"


class MetricPoint(models.Model):
    """One metric report from rank 0. `(attempt, seq)` is unique, so re-delivery is harmless."""

    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        VAL = "val", "Validation"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="metric_points")
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="metric_points")
    seq = models.PositiveIntegerField()
    split = models.CharField(max_length=8, choices=Split.choices)
    step = models.PositiveIntegerField()
    epoch = models.PositiveIntegerField()
    loss = models.FloatField()
    accuracy = models.FloatField(null=True, blank=True)
    reported_at = models.DateTimeField()

    class Meta:
        ordering = ["attempt", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["attempt", "seq"], name="metric_attempt_seq_unique")
        ]
        indexes = [
            models.Index(fields=["job", "attempt", "seq"]),
            # A zoomed chart reads one time range of a long run (`portal.jobs.series`).
            models.Index(fields=["job", "reported_at"], name="metric_job_time"),
        ]

    def __str__(self) -> str:
        return f"{self.split} step {self.step} of {self.attempt}"


class RankSample(models.Model):
    """One rank's own figures over about a second of its steps (a `RankStatsEntry`): step time,
    throughput and GPU memory, per rank rather than the gang's all-reduced loss."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="rank_samples")
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="rank_samples")
    node_rank = models.PositiveIntegerField()
    rank = models.PositiveIntegerField()
    local_rank = models.PositiveIntegerField()
    # The window's last step, and how many steps it summed up.
    step = models.PositiveIntegerField()
    steps = models.PositiveIntegerField()
    step_time_s = models.FloatField()
    samples_per_s = models.FloatField()
    gpu_memory_used = models.BigIntegerField(null=True, blank=True)
    reported_at = models.DateTimeField()

    class Meta:
        ordering = ["attempt", "rank", "step"]
        constraints = [
            models.UniqueConstraint(
                fields=["attempt", "rank", "step"], name="ranksample_attempt_rank_step_unique"
            )
        ]
        indexes = [models.Index(fields=["job", "reported_at"])]

    def __str__(self) -> str:
        return f"rank {self.rank} at step {self.step} of {self.attempt}"


class MetricBlock(models.Model):
    """The extremes of one block of `BLOCK_POINTS` consecutive seqs of an attempt, per split: what
    a long run's chart reads instead of its millions of points (`portal.jobs.series`).

    Written by the beat task `roll_metric_blocks` only for blocks every point of which is stored,
    so a block never changes once written; the points after the last block are read raw."""

    BLOCK_POINTS = 256

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="metric_blocks")
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="metric_blocks")
    split = models.CharField(max_length=8, choices=MetricPoint.Split.choices)
    block = models.PositiveIntegerField()  # seq // BLOCK_POINTS
    count = models.PositiveIntegerField()
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    # Finite values only: a NaN loss would otherwise be every block's maximum.
    loss_min = models.FloatField(null=True)
    loss_max = models.FloatField(null=True)
    accuracy_min = models.FloatField(null=True)
    accuracy_max = models.FloatField(null=True)
    # The block's last point, as reported (a NaN loss included): a page's "latest" figures.
    loss_last = models.FloatField()
    accuracy_last = models.FloatField(null=True)

    class Meta:
        ordering = ["attempt", "block", "split"]
        constraints = [
            models.UniqueConstraint(
                fields=["attempt", "block", "split"], name="metricblock_attempt_block_split"
            )
        ]
        indexes = [models.Index(fields=["job", "first_at"], name="metricblock_job_time")]

    def __str__(self) -> str:
        return f"{self.split} block {self.block} of {self.attempt}"


class LogLine(models.Model):
    """One line of stdout or stderr from a rank, as captured by its node's launcher.

    Pages and cursors go by `(attempt, node_rank, seq)`: seq is contiguous per node share, so
    a reader can tell a line not yet committed (by another ingest process) from one that does
    not exist. `id` only orders the tail of a log."""

    class Stream(models.TextChoices):
        STDOUT = "stdout", "stdout"
        STDERR = "stderr", "stderr"
        # The launcher's own line: the job's log reached its cap on that node.
        NOTICE = "notice", "notice"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_lines")
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="log_lines")
    node_rank = models.PositiveIntegerField()
    # The rank that wrote it (global, and on its node); null for torchrun's own lines.
    rank = models.PositiveIntegerField(null=True, blank=True)
    local_rank = models.PositiveIntegerField(null=True, blank=True)
    seq = models.PositiveIntegerField()
    stream = models.CharField(max_length=8, choices=Stream.choices)
    line = models.TextField()
    reported_at = models.DateTimeField()

    class Meta:
        ordering = ["attempt", "node_rank", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["attempt", "node_rank", "seq"], name="logline_attempt_rank_seq_unique"
            )
        ]
        indexes = [models.Index(fields=["job", "id"])]

    def __str__(self) -> str:
        return f"{self.stream} {self.seq} of {self.attempt}"


class JobLogVolume(models.Model):
    """How much log a job has stored, kept by ingest so it can enforce the job's cap
    (`TRAINYARD_LOG_MAX_BYTES_PER_JOB`, `..._LINES_PER_JOB`) without counting rows. Counts may
    run a little high (a re-delivered batch counts again), never low."""

    job = models.OneToOneField(
        Job, on_delete=models.CASCADE, primary_key=True, related_name="log_volume"
    )
    bytes = models.BigIntegerField(default=0)
    lines = models.BigIntegerField(default=0)
    # When ingest first dropped a line past the cap, or stored a launcher's notice.
    truncated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"log of job {self.job_id}: {self.lines} lines, {self.bytes} bytes"


class Checkpoint(models.Model):
    """A checkpoint file an attempt's reporting rank wrote whole (a `checkpoint.saved` event).

    The file lives under the job's checkpoint directory at `name` (`attempt-7/epoch-3.pt`);
    the trainer prunes all but the newest few and the best, so a row may outlive its file.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="checkpoints")
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="checkpoints")
    epoch = models.PositiveIntegerField()
    step = models.PositiveIntegerField()
    name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    val_loss = models.FloatField(null=True, blank=True)
    val_accuracy = models.FloatField(null=True, blank=True)
    # The best so far by the job's `best_metric` when it was written (then `best.pt` is a copy).
    is_best = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["job", "attempt", "epoch"]
        constraints = [
            models.UniqueConstraint(fields=["attempt", "name"], name="checkpoint_attempt_name")
        ]
        indexes = [models.Index(fields=["job", "epoch"])]

    def __str__(self) -> str:
        return f"{self.name} of job {self.job_id}"


class JobTemplate(models.Model):
    """A job spec saved under a name, to submit again with overrides (`portal.jobs.templates`).

    Personal (`owner` set) or a team's (`team` set, every member may use and change it): one of
    the two, never both. Names are unique within their owner's or team's templates. `spec` is a
    whole validated `JobRequest`, as JSON.
    """

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="job_templates",
    )
    team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="job_templates",
    )
    spec = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(owner__isnull=False, team__isnull=True)
                    | models.Q(owner__isnull=True, team__isnull=False)
                ),
                name="job_template_owner_xor_team",
            ),
            models.UniqueConstraint(
                fields=["owner", "name"],
                condition=models.Q(team__isnull=True),
                name="job_template_owner_name_unique",
            ),
            models.UniqueConstraint(
                fields=["team", "name"],
                condition=models.Q(owner__isnull=True),
                name="job_template_team_name_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.team.name if self.team else 'personal'})"
