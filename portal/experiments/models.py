from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Search(models.Model):
    """A hyperparameter search: many trials (ordinary jobs) over a space of a model's
    hyperparameters and training settings, sampled by Optuna and judged by its pruner.

    These rows (and the trials') are the truth; Optuna's study is rebuilt in memory from them
    whenever a trial is asked for or judged (`portal.experiments.study`). State changes are
    conditional updates made while holding this row's lock (`portal.experiments.services`).
    """

    class Method(models.TextChoices):
        GRID = "grid", "Grid"
        RANDOM = "random", "Random"
        TPE = "tpe", "Bayesian (TPE)"

    class Direction(models.TextChoices):
        MINIMIZE = "minimize", "Minimize"
        MAXIMIZE = "maximize", "Maximize"

    class Pruner(models.TextChoices):
        NONE = "none", "None"
        SUCCESSIVE_HALVING = "successive_halving", "Successive halving (ASHA)"
        HYPERBAND = "hyperband", "Hyperband"
        MEDIAN = "median", "Median"

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    TERMINAL = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="searches"
    )
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL)
    name = models.CharField(max_length=200)
    dataset = models.ForeignKey("catalog.Dataset", on_delete=models.PROTECT)
    model = models.ForeignKey("catalog.ModelArchitecture", on_delete=models.PROTECT)
    # The validated base job request (portal.jobs.schemas.JobRequest) every trial starts from.
    base_request = models.JSONField()
    # The dimensions (portal.experiments.schemas.Dimension), as validated.
    space = models.JSONField()
    method = models.CharField(max_length=16, choices=Method.choices, default=Method.RANDOM)
    metric = models.CharField(max_length=32, default="val_loss")
    direction = models.CharField(max_length=8, choices=Direction.choices)
    max_trials = models.PositiveIntegerField()
    parallelism = models.PositiveIntegerField()
    seed = models.PositiveIntegerField(default=0)
    pruner = models.CharField(max_length=24, choices=Pruner.choices, default=Pruner.NONE)
    # The pruner's settings (portal.experiments.schemas.EarlyStopping, without `kind`).
    pruner_settings = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    state_reason = models.TextField(blank=True)
    best_trial = models.ForeignKey(
        "experiments.Trial", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "searches"
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="search_owner_newest"),
            models.Index(fields=["team", "-created_at"], name="search_team_newest"),
            models.Index(fields=["state"], name="search_state"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (search #{self.pk})"

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL


class Trial(models.Model):
    """One point of a search's space, trained as one job.

    `running` covers the whole life of its job (queued, running, cancelling). A trial the
    pruner stops is `pruned` at once, with the step and the comparison that stopped it; its
    job is cancelled. `intermediate` holds the optimised metric per epoch (the step Optuna is
    told), read from the job's metric points after `(cursor_attempt, cursor_seq)`.
    """

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        PRUNED = "pruned", "Pruned"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    TERMINAL = frozenset({State.COMPLETED, State.PRUNED, State.FAILED, State.CANCELLED})

    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField()
    # Null when the job could not be submitted (the trial failed with the reason).
    job = models.OneToOneField(
        "jobs.Job", null=True, blank=True, on_delete=models.PROTECT, related_name="trial"
    )
    # Dimension name ("training.learning_rate") -> the value this trial runs with.
    params = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    state_reason = models.TextField(blank=True)
    # Epoch (as a string: JSON keys) -> the optimised metric at that epoch.
    intermediate = models.JSONField(default=dict, blank=True)
    cursor_attempt = models.BigIntegerField(default=0)
    cursor_seq = models.BigIntegerField(default=-1)
    # The epochs the pruner has already judged, in order; and what Optuna's pruner and sampler
    # kept on the trial (rung values, grid id), so a rebuilt study is the same study.
    judged_until = models.PositiveIntegerField(default=0)
    optuna_attrs = models.JSONField(default=dict, blank=True)
    pruned_step = models.PositiveIntegerField(null=True, blank=True)
    pruned_comparison = models.TextField(blank=True)
    best_value = models.FloatField(null=True, blank=True)
    final_value = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["search", "number"]
        constraints = [
            models.UniqueConstraint(fields=["search", "number"], name="trial_search_number")
        ]

    def __str__(self) -> str:
        return f"trial {self.number} of search {self.search_id}"

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL
