"""Writes for searches: create, advance (follow trials, prune, launch more, end), cancel,
register the best trial.

Every decision about a search is made while holding its row lock (`select_for_update`), so the
receiver of `job_finished`, the beat tick and a user's cancel, running at once in several
processes, never launch a trial twice or past `parallelism`. Lock order: the search, then its
trials' jobs (through `portal.jobs.services`); nothing locks a job and then a search.
Trials are ordinary jobs submitted with `job_submit` as the search's owner, so they queue
within the owner's quotas and say why they wait.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from datetime import datetime, timedelta

import pydantic
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.accounts.models import Team
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.selectors import datasets_visible_to, models_visible_to
from portal.celery import app as celery_app
from portal.experiments import study
from portal.experiments.models import Search, Trial
from portal.experiments.schemas import (
    METRICS,
    Dimension,
    SearchRequest,
    grid_size,
    with_params,
)
from portal.experiments.selectors import searches_visible_to
from portal.experiments.signals import search_finished
from portal.jobs.models import Job, MetricPoint
from portal.jobs.schemas import (
    HyperparametersInvalid,
    JobRequest,
    TrainingParams,
    dotted_errors,
    model_spec_for,
)
from portal.jobs.services import DryRunUnavailable, job_cancel, job_submit
from portal.registry.models import ModelVersion
from portal.registry.services import model_version_register

logger = logging.getLogger(__name__)

Errors = dict[str, list[str]]
SEARCH_ADVANCE_TASK = "portal.experiments.tasks.search_advance"
# New metric points read per trial per advance: a bound on one query, not on a trial (the
# next advance reads on from the cursor).
POINTS_PER_READ = 2000


# ---- create ----------------------------------------------------------------------------------


def _value_errors(dimension: Dimension, model: ModelArchitecture, base: JobRequest) -> list[str]:
    """Why some value of `dimension` is one the model's Struct or the training settings
    refuse (its bounds are intervals, so the extremes and every choice show it)."""
    section, field = dimension.name.split(".", 1)
    if section == "hyperparameters" and model.family != ModelArchitecture.Family.CUSTOM:
        known = set(model.default_params) - {"architecture"}
        if field not in known:
            return [
                f"{model.name} has no hyperparameter {field}; it has {', '.join(sorted(known))}."
            ]
    problems: list[str] = []
    for value in dimension.extremes():
        if section == "hyperparameters":
            try:
                model_spec_for(model, {**base.hyperparameters, field: value})
            except HyperparametersInvalid as exc:
                messages = [m for ms in exc.errors.values() for m in ms]
                problems.append(f"{value!r}: {'; '.join(messages)}")
        else:
            try:
                TrainingParams.model_validate(
                    {**base.training.model_dump(), field: value}, strict=True
                )
            except pydantic.ValidationError as exc:
                messages = [m for ms in dotted_errors(exc).values() for m in ms]
                problems.append(f"{value!r}: {'; '.join(messages)}")
    return problems


def search_create(*, user: AbstractBaseUser, request: SearchRequest) -> Search:
    """Create a running search for `user` and ask for its first trials (on commit), or raise
    ValidationError keyed by dotted `SearchRequest` paths (`space.0`, `metric`, `job.dataset`).
    """
    try:
        request = SearchRequest.model_validate(request.model_dump(exclude_unset=True))
    except pydantic.ValidationError as exc:
        raise ValidationError(dotted_errors(exc)) from exc
    base = request.job
    errors: Errors = {}
    dataset: Dataset | None = datasets_visible_to(user).filter(pk=base.dataset).first()
    if dataset is None:
        errors["job.dataset"] = [f"There is no dataset {base.dataset} that you can use."]
    elif dataset.state != Dataset.State.READY:
        errors["job.dataset"] = [f"Dataset {dataset.name} is {dataset.state}, not ready."]
    elif dataset.task == Dataset.Task.REGRESSION and request.metric == "val_accuracy":
        errors["metric"] = ["A regression has no accuracy; optimise val_loss."]
    model: ModelArchitecture | None = models_visible_to(user).filter(pk=base.model).first()
    if model is None:
        errors["job.model"] = [f"There is no model {base.model} that you can use."]
    else:
        try:
            model_spec_for(model, base.hyperparameters)
        except HyperparametersInvalid as exc:
            errors.update({f"job.{key}": messages for key, messages in exc.errors.items()})
        for index, dimension in enumerate(request.space):
            if problems := _value_errors(dimension, model, base):
                errors[f"space.{index}"] = [f"{dimension.name}: {p}" for p in problems]
    if errors:
        raise ValidationError(errors)
    assert dataset is not None and model is not None
    # The best checkpoint (what "register the best trial" registers) is chosen by the metric
    # the search optimises.
    training = base.training.model_copy(update={"best_metric": request.metric})
    base = base.model_copy(update={"training": training})
    max_trials = request.max_trials
    if request.method == "grid":
        max_trials = min(max_trials, grid_size(list(request.space)))
    name = request.name.strip() or f"{model.name} on {dataset.name} search"
    with transaction.atomic():
        search = Search.objects.create(
            owner_id=user.pk,
            team=Team.objects.filter(members=user.pk).order_by("name").first(),
            name=name,
            dataset=dataset,
            model=model,
            base_request=base.model_dump(mode="json", exclude_unset=False),
            space=[dimension.model_dump(mode="json") for dimension in request.space],
            method=request.method,
            metric=request.metric,
            direction=request.resolved_direction,
            max_trials=max_trials,
            parallelism=request.parallelism,
            seed=request.seed,
            pruner=request.early_stopping.kind,
            pruner_settings=request.early_stopping.model_dump(exclude={"kind"}),
        )
        search_advance_on_commit(search.pk)
    return search


def search_advance_on_commit(search_id: int) -> None:
    """Have a control worker advance the search after the commit (`search_advance`)."""
    transaction.on_commit(lambda: celery_app.send_task(SEARCH_ADVANCE_TASK, args=[search_id]))


# ---- advance ---------------------------------------------------------------------------------


def searches_follow_jobs(*, job_ids: Collection[int]) -> None:
    """Advance, after the commit, the searches whose running trials are among `job_ids`:
    ingest calls it for the jobs a batch stored validation points of, so a pruner judges an
    epoch as it lands rather than at the next tick (one query per batch)."""
    searches = (
        Trial.objects.filter(job_id__in=list(job_ids), state=Trial.State.RUNNING)
        .values_list("search_id", flat=True)
        .distinct()
    )
    for search_id in searches:
        search_advance_on_commit(search_id)


def search_advance(*, search_id: int, skip_locked: bool = False) -> Search | None:
    """Bring the search up to date with its trials' jobs, under its row lock: read their new
    metric points, ask the pruner about each new epoch (cancelling a trial it stops), end the
    trials whose jobs ended, launch trials while fewer than `parallelism` are unfinished and
    the budget allows, and end the search when every trial has. Idempotent: a second call
    with nothing new changes nothing. `skip_locked`: return None at once if another process
    is advancing it (the beat tick; the receiver waits instead).

    Runs on a control worker, which does each trial's dry run itself."""
    with transaction.atomic():
        search = (
            Search.objects.select_for_update(skip_locked=skip_locked)
            .filter(pk=search_id)
            .select_related("owner")
            .first()
        )
        if search is None or search.is_terminal:
            return search
        trials = list(search.trials.select_related("job").order_by("number"))
        for trial in trials:
            if trial.state == Trial.State.RUNNING:
                _follow(search, trials, trial)
        _launch(search, trials)
        _settle(search, trials)
        return search


def _read_points(search: Search, trial: Trial, job_id: int) -> None:
    split, field = METRICS[search.metric]
    points = (
        MetricPoint.objects.filter(job_id=job_id, split=split)
        .filter(
            Q(attempt_id__gt=trial.cursor_attempt)
            | Q(attempt_id=trial.cursor_attempt, seq__gt=trial.cursor_seq)
        )
        .order_by("attempt_id", "seq")
        .values_list("attempt_id", "seq", "epoch", field)[:POINTS_PER_READ]
    )
    intermediate = dict(trial.intermediate)
    for attempt_id, seq, epoch, value in points:
        finite = value is not None and math.isfinite(value)
        # A resumed attempt reports an epoch again: the newest report of an epoch counts.
        intermediate[str(epoch)] = float(value) if finite else None
        trial.cursor_attempt, trial.cursor_seq = attempt_id, seq
    trial.intermediate = intermediate
    values = study.intermediate_values(trial)
    if values:
        pick = max if search.direction == Search.Direction.MAXIMIZE else min
        trial.best_value = pick(values.values())
        trial.final_value = values[max(values)]


def _follow(search: Search, trials: list[Trial], trial: Trial) -> None:
    """Read the trial's new points, judge its new epochs, and end it when its job ended."""
    job = trial.job
    assert job is not None  # a trial without a job failed when it was created
    now = timezone.now()
    _read_points(search, trial, job.pk)
    new_steps = sorted(s for s in study.intermediate_values(trial) if s > trial.judged_until)
    for step in new_steps:
        if search.pruner == Search.Pruner.NONE:
            trial.judged_until = step
            continue
        verdict = study.judge(search, trials, trial, step)
        trial.optuna_attrs, trial.judged_until = verdict.optuna_attrs, step
        if verdict.pruned:
            # Judged after its job ended too (a trial faster than the tick): the verdict is
            # the same one the pruner gives a slower trial, so a search's outcome does not
            # depend on how often it is read.
            trial.state, trial.pruned_step = Trial.State.PRUNED, step
            trial.pruned_comparison = verdict.comparison
            trial.state_reason = f"Stopped early at epoch {step}: {verdict.comparison}."
            trial.finished_at = now
            break
    if trial.state == Trial.State.RUNNING and job.is_terminal:
        _end_with_job(search, trial, job, now)
    trial.save()
    if trial.state == Trial.State.PRUNED and not job.is_terminal:
        trial.job = job_cancel(user=search.owner, job=job)


def _end_with_job(search: Search, trial: Trial, job: Job, now: datetime) -> None:
    if job.state == Job.State.SUCCEEDED:
        epochs = int(job.spec.get("training", {}).get("epochs", 0))
        seen = max(study.intermediate_values(trial), default=0)
        grace = timedelta(seconds=settings.TRAINYARD_SEARCH_METRICS_GRACE_S)
        # The exit can be stored before the last epoch's points (two streams): wait for them,
        # a little.
        if seen < epochs and job.finished_at is not None and now - job.finished_at < grace:
            return
        if trial.best_value is None:
            trial.state, trial.state_reason = Trial.State.FAILED, f"It reported no {search.metric}."
        else:
            trial.state, trial.state_reason = Trial.State.COMPLETED, ""
    elif job.state == Job.State.FAILED:
        trial.state, trial.state_reason = Trial.State.FAILED, job.state_reason
    else:
        trial.state, trial.state_reason = Trial.State.CANCELLED, job.state_reason
    trial.finished_at = now


def _unfinished(trials: list[Trial]) -> int:
    """Trials holding a place in `parallelism`: running, or with a job not yet ended (a
    pruned trial's job is still stopping)."""
    return sum(
        1
        for trial in trials
        if trial.state == Trial.State.RUNNING
        or (trial.job is not None and not trial.job.is_terminal)
    )


def _launch(search: Search, trials: list[Trial]) -> None:
    room = min(search.parallelism - _unfinished(trials), search.max_trials - len(trials))
    for _ in range(max(room, 0)):
        trials.append(_trial_submit(search, trials))


def _submit_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "message_dict"):
        return "; ".join(f"{key}: {' '.join(ms)}" for key, ms in exc.message_dict.items())
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(f"{k}: {' '.join(ms)}" for k, ms in dotted_errors(exc).items())
    return str(exc)


def _trial_submit(search: Search, trials: list[Trial]) -> Trial:
    number = len(trials)
    point = study.ask(search, trials)
    request = with_params(search.base_request, point.params)
    request["name"] = f"{search.name} · trial {number}"
    job: Job | None = None
    problem = ""
    try:
        with transaction.atomic():  # a refused submit leaves nothing behind
            job = job_submit(
                user=search.owner,
                request=JobRequest.model_validate(request),
                check_in_process=True,
            )
    except (ValidationError, pydantic.ValidationError, DryRunUnavailable) as exc:
        problem = f"The job was not submitted: {_submit_problem(exc)}"
    return Trial.objects.create(
        search=search,
        number=number,
        job=job,
        params=point.params,
        optuna_attrs=point.optuna_attrs,
        state=Trial.State.RUNNING if job is not None else Trial.State.FAILED,
        state_reason=problem,
        finished_at=None if job is not None else timezone.now(),
    )


def _settle(search: Search, trials: list[Trial]) -> None:
    completed = [t for t in trials if t.state == Trial.State.COMPLETED and t.best_value is not None]
    maximize = search.direction == Search.Direction.MAXIMIZE
    best = None
    if completed:
        best = min(
            completed,
            key=lambda t: (-(t.best_value or 0.0) if maximize else (t.best_value or 0.0), t.number),
        )
    if best is not None and search.best_trial_id != best.pk:
        Search.objects.filter(pk=search.pk).update(best_trial=best)
        search.best_trial = best
    if len(trials) < search.max_trials or _unfinished(trials):
        return
    state = Search.State.SUCCEEDED if completed else Search.State.FAILED
    reason = (
        f"{len(trials)} trials: {len(completed)} completed, "
        f"{sum(t.state == Trial.State.PRUNED for t in trials)} pruned."
    )
    _finish(search, state=state, reason=reason)


def _finish(search: Search, *, state: str, reason: str) -> bool:
    now = timezone.now()
    if not Search.objects.filter(pk=search.pk, state=Search.State.RUNNING).update(
        state=state, state_reason=reason, finished_at=now
    ):
        return False
    search.state, search.state_reason, search.finished_at = state, reason, now

    def announce() -> None:
        for receiver, result in search_finished.send_robust(sender=Search, search=search):
            if isinstance(result, Exception):
                logger.error("receiver %r of search_finished failed", receiver, exc_info=result)

    transaction.on_commit(announce)
    return True


# ---- cancel ----------------------------------------------------------------------------------


def _check_visible(user: AbstractBaseUser, search: Search) -> None:
    if not searches_visible_to(user).filter(pk=search.pk).exists():
        raise PermissionDenied("You cannot change this search.")


def search_cancel(*, user: AbstractBaseUser, search: Search) -> Search:
    """Cancel the search and every unfinished trial's job (each through `job_cancel`).
    Idempotent: an ended search is unchanged."""
    _check_visible(user, search)
    with transaction.atomic():
        current = Search.objects.select_for_update().get(pk=search.pk)
        if current.is_terminal:
            return current
        trials = list(current.trials.select_related("job").order_by("number"))
        who = user.get_username()
        for trial in trials:
            if trial.state == Trial.State.RUNNING:
                trial.state = Trial.State.CANCELLED
                trial.state_reason = f"The search was cancelled by {who}."
                trial.finished_at = timezone.now()
                trial.save(update_fields=["state", "state_reason", "finished_at"])
            if trial.job is not None and not trial.job.is_terminal:
                job_cancel(user=user, job=trial.job)
        _finish(current, state=Search.State.CANCELLED, reason=f"Cancelled by {who}.")
        return current


def trial_cancel(*, user: AbstractBaseUser, trial: Trial) -> Trial:
    """Cancel one trial (its job); the search goes on and launches the next in its place
    (the budget counts the cancelled one)."""
    _check_visible(user, trial.search)
    with transaction.atomic():
        Search.objects.select_for_update().get(pk=trial.search_id)
        current = Trial.objects.select_related("job").get(pk=trial.pk)
        if current.state == Trial.State.RUNNING:
            current.state = Trial.State.CANCELLED
            current.state_reason = f"Cancelled by {user.get_username()}."
            current.finished_at = timezone.now()
            current.save(update_fields=["state", "state_reason", "finished_at"])
        if current.job is not None and not current.job.is_terminal:
            current.job = job_cancel(user=user, job=current.job)
        search_advance_on_commit(current.search_id)
        return current


# ---- register --------------------------------------------------------------------------------


def search_register_best(*, user: AbstractBaseUser, search: Search, name: str) -> ModelVersion:
    """Register the best completed trial's job in the model registry (its best checkpoint,
    with the job's lineage). ValidationError keyed `search` when no trial has completed."""
    _check_visible(user, search)
    best = (
        Trial.objects.filter(pk=search.best_trial_id).select_related("job").first()
        if search.best_trial_id
        else None
    )
    if best is None or best.job is None:
        raise ValidationError({"search": ["No trial has completed yet, so none is the best."]})
    return model_version_register(user=user, job=best.job, name=name.strip() or search.name)
