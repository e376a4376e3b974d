"""Writes for jobs: submit, cancel, and the attempt reports that move a job through its life.

Every state change is a conditional update along `Job.TRANSITIONS`, made while holding the
attempt's row lock (and the job's, where the decision reads it), and every change is broadcast
after the commit. Reports about attempts are fenced by the attempt id: a report that names an
unknown attempt, another job's attempt or one that has already ended changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import pydantic
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.accounts.models import Team
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.selectors import datasets_visible_to, models_visible_to
from portal.cluster.models import Node
from portal.cluster.services import node_share_exited
from portal.jobs import events, lifecycle, quotas, signals, transitions
from portal.jobs.dry_run import MODEL_DRY_RUN_TASK, DryRunAnswer, dry_run_answer
from portal.jobs.models import Attempt, Checkpoint, Job, Placement
from portal.jobs.scheduling import constraint_misses
from portal.jobs.schemas import (
    HyperparametersInvalid,
    JobRequest,
    dotted_errors,
    model_params,
    model_spec_for,
)
from portal.jobs.selectors import attempt_is_current, jobs_visible_to
from portal.jobs.stopping import attempt_stop_unfinished
from portal.lib.calls import WorkerUnavailable, call_and_wait
from portal.lib.ticks import request_schedule
from workers.messages import (
    AttemptExitedEntry,
    AttemptStartedEntry,
    CheckpointSavedEntry,
    CustomModel,
    ModelSpec,
)

logger = logging.getLogger(__name__)

Errors = dict[str, list[str]]


# ---- submit ----------------------------------------------------------------------------------


def _revalidated(request: JobRequest) -> JobRequest:
    # A caller may have built the request with model_construct(), which skips validation; the
    # service is the last line before a job reaches a node.
    try:
        return JobRequest.model_validate(request.model_dump(exclude_unset=True))
    except pydantic.ValidationError as exc:
        raise ValidationError(dotted_errors(exc)) from exc


class DryRunUnavailable(Exception):
    """No control worker answered the dry run in time: the job was not queued (a 503)."""


@dataclass(frozen=True)
class ModelCheck:
    """What the dry run said about a job's model: its parameter count, or why it was skipped."""

    parameter_count: int | None
    note: str


CUSTOM_CODE_NOT_CHECKED = (
    "Not dry-run: custom code runs only on nodes, so its shape is checked when it trains."
)


def model_check(*, spec: ModelSpec, dataset: Dataset, in_process: bool = False) -> ModelCheck:
    """Build the model for `dataset`'s shape on a control worker and count its parameters.

    `in_process`: the caller *is* a control worker (a search launching its trials), which
    builds the model itself: a task must not wait on another task's result.
    Raises ValidationError on `hyperparameters` for a shape the model cannot take, and
    `DryRunUnavailable` when no worker answers within TRAINYARD_DRY_RUN_TIMEOUT_S."""
    if isinstance(spec, CustomModel):
        return ModelCheck(parameter_count=None, note=CUSTOM_CODE_NOT_CHECKED)
    kwargs = {
        "model": msgspec.to_builtins(spec),
        "input_shape": list(dataset.input_shape),
        "task": dataset.task,
        "num_classes": len(dataset.classes),
    }
    try:
        answer: DryRunAnswer = (
            dry_run_answer(**kwargs)
            if in_process
            else call_and_wait(
                MODEL_DRY_RUN_TASK,
                kwargs=kwargs,
                queue=settings.TRAINYARD_DRY_RUN_QUEUE,
                timeout_s=settings.TRAINYARD_DRY_RUN_TIMEOUT_S,
            )
        )
    except WorkerUnavailable as exc:
        raise DryRunUnavailable(
            f"The model could not be checked, so the job was not queued: {exc}. "
            "Try again in a moment; if it persists, the control worker is down."
        ) from exc
    if "error" in answer:
        raise ValidationError(
            {"hyperparameters": [f"The model does not fit {dataset}: {answer['error']}"]}
        )
    count = int(answer["parameters"])
    return ModelCheck(parameter_count=count, note=f"Dry run: {count:,} parameters.")


def _task_errors(request: JobRequest, dataset: Dataset) -> Errors:
    """Training choices the dataset's task cannot use."""
    errors: Errors = {}
    if dataset.task == Dataset.Task.REGRESSION:
        if request.training.loss != "mse":
            errors["training.loss"] = ["A regression dataset trains with mse."]
        if request.training.best_metric == "val_accuracy":
            errors["training.best_metric"] = [
                "A regression has no accuracy; choose the best checkpoint by val_loss."
            ]
    return errors


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _placement_probe(request: JobRequest) -> Job:
    """An unsaved job with the request's placement constraints, for `constraint_misses`."""
    resources = request.resources
    return Job(
        pool=resources.pool or "",
        gpu_model=resources.gpu_model or "",
        node_selector=dict(resources.labels),
    )


def _constraint_errors(request: JobRequest, nodes: list[Node]) -> Errors:
    """Which of the request's placement constraints no registered node meets, if any."""
    resources = request.resources
    pools = sorted({node.pool for node in nodes})
    if resources.pool and resources.pool not in pools:
        return {
            "resources.pool": [f"No node is in pool {resources.pool}; pools: {', '.join(pools)}."]
        }
    in_pool = [node for node in nodes if not resources.pool or node.pool == resources.pool]
    if resources.gpu_model:
        models = sorted({node.gpu_model for node in in_pool if node.gpu_model})
        wanted = resources.gpu_model.casefold()
        if not any(wanted in model.casefold() for model in models):
            have = ", ".join(models) or "none"
            return {
                "resources.gpu_model": [f"No node has {resources.gpu_model} GPUs; models: {have}."]
            }
    if resources.labels:
        probe = Job(
            pool=resources.pool or "",
            gpu_model=resources.gpu_model or "",
            node_selector=dict(resources.labels),
        )
        if all(constraint_misses(node, probe) for node in in_pool):
            wanted_labels = ", ".join(f"{k}={v}" for k, v in resources.labels.items())
            return {"resources.labels": [f"No node carries the labels {wanted_labels}."]}
    return {}


def _capacity_errors(request: JobRequest) -> Errors:
    """Whether the cluster's nodes could ever run the job, whatever they run now and whatever
    their state: a job that only offline, draining or cordoned nodes fit waits for them (the
    scheduler says so), so draining the whole cluster for maintenance does not stop
    submissions. Only nodes that meet the job's pool, GPU model and labels count."""
    resources = request.resources
    nodes = list(Node.objects.only("pool", "labels", "gpu_model", "cpu_slots", "gpu_count"))
    if nodes and (errors := _constraint_errors(request, nodes)):
        return errors
    probe = _placement_probe(request)
    nodes = [node for node in nodes if not constraint_misses(node, probe)]
    if resources.gpus_per_node:
        field, need = "resources.gpus_per_node", resources.gpus_per_node
        offers = [node.gpu_count for node in nodes]
        what, unit = _plural(need, "GPU") + " per node", "GPU"
    else:
        field, need = "resources.procs_per_node", resources.procs_per_node
        offers = [node.cpu_slots for node in nodes]
        what, unit = ("1 process" if need == 1 else f"{need} processes"), "CPU slot"
    if not offers:
        return {field: [f"No node can run {what}: no node has joined the cluster yet."]}
    fitting = sum(1 for offer in offers if offer >= need)
    if fitting == 0:
        largest = _plural(max(offers), unit)
        return {field: [f"No node can run {what}: the largest node has {largest}."]}
    if fitting < resources.nodes:
        nodes_can = "1 node can" if fitting == 1 else f"{fitting} nodes can"
        return {
            "resources.nodes": [
                f"Only {nodes_can} run {what}; the job asks for {resources.nodes} nodes."
            ]
        }
    return {}


@dataclass(frozen=True)
class ValidSubmission:
    """A request that passed every check of a submit: what `job_submit` queues and the plan
    preview plans."""

    request: JobRequest
    dataset: Dataset
    model: ModelArchitecture
    spec: ModelSpec
    check: ModelCheck
    # The team it is charged to (None: the user is in no team).
    team: Team | None


def job_validate(
    *, user: AbstractBaseUser, request: JobRequest, check_in_process: bool = False
) -> ValidSubmission:
    """Check a submission as `job_submit` does, storing nothing; raise ValidationError keyed
    by dotted `JobRequest` paths (`DryRunUnavailable` when the model could not be checked).
    `check_in_process`: the caller runs on a control worker and does the dry run itself (see
    `model_check`).

    The hyperparameters are checked against the model's architecture (over its defaults),
    then the model is built for the dataset's shape on a control worker (`model_check`),
    outside any transaction: the wait holds no lock. The team is `request.team` (one of the
    user's teams; default: their first team by name, if any), and the priority must be within
    the user's and the team's quota range (keyed `priority`)."""
    request = _revalidated(request)
    errors: Errors = {}
    dataset: Dataset | None = datasets_visible_to(user).filter(pk=request.dataset).first()
    if dataset is None:
        errors["dataset"] = [f"There is no dataset {request.dataset} that you can use."]
    elif dataset.state != Dataset.State.READY:
        errors["dataset"] = [f"Dataset {dataset.name} is {dataset.state}, not ready."]
    else:
        errors.update(_task_errors(request, dataset))
    model: ModelArchitecture | None = models_visible_to(user).filter(pk=request.model).first()
    spec: ModelSpec | None = None
    if model is None:
        errors["model"] = [f"There is no model {request.model} that you can use."]
    else:
        try:
            spec = model_spec_for(model, request.hyperparameters)
        except HyperparametersInvalid as exc:
            errors.update(exc.errors)
    errors.update(_capacity_errors(request))
    team: Team | None = None
    try:
        team = quotas.submit_team(user=user, name=request.team)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    else:
        errors.update(quotas.priority_errors(user=user, team=team, priority=request.priority))
    if errors:
        raise ValidationError(errors)
    assert dataset is not None and model is not None and spec is not None
    check = model_check(spec=spec, dataset=dataset, in_process=check_in_process)
    return ValidSubmission(request, dataset, model, spec, check, team)


def job_submit(
    *, user: AbstractBaseUser, request: JobRequest, check_in_process: bool = False
) -> Job:
    """Queue a job for `user`, or raise what `job_validate` raises.

    The job is charged to its team (`job_validate`): that team's members see it. The
    queued-jobs limits are checked under row locks as the job is created
    (`portal.jobs.quotas`, docs/quotas.md). `Job.spec` holds the request as it will run: the
    name resolved and the hyperparameters merged over the model's defaults.
    """
    valid = job_validate(user=user, request=request, check_in_process=check_in_process)
    return _job_create(user=user, valid=valid)


def job_unsaved(*, user: AbstractBaseUser, valid: ValidSubmission) -> Job:
    """The job a valid submission becomes, not yet stored (the plan preview's, and the row
    `_job_create` stores)."""
    request, dataset, model, spec, check, team = (
        valid.request,
        valid.dataset,
        valid.model,
        valid.spec,
        valid.check,
        valid.team,
    )
    name = request.name.strip() or f"{model.name} on {dataset.name}"
    stored = request.model_copy(update={"name": name, "hyperparameters": model_params(spec)})
    resources = request.resources
    entry = lifecycle.on_submit()
    return Job(
        owner_id=user.pk,
        team=team,
        name=name,
        dataset=dataset,
        model=model,
        spec=stored.model_dump(mode="json"),
        parameter_count=check.parameter_count,
        model_check=check.note,
        nodes=resources.nodes,
        procs_per_node=resources.procs_per_node,
        gpus_per_node=resources.gpus_per_node,
        pool=resources.pool or "",
        gpu_model=resources.gpu_model or "",
        node_selector=dict(resources.labels),
        priority=request.priority,
        max_restarts=request.max_restarts,
        max_run_time_s=(
            request.scheduling.max_run_time_minutes * 60
            if request.scheduling.max_run_time_minutes
            else round(settings.TRAINYARD_DEFAULT_MAX_RUN_TIME_S)
        ),
        preemptible=request.scheduling.preemptible,
        state=entry.to,
        state_reason=entry.reason,
    )


@transaction.atomic
def _job_create(*, user: AbstractBaseUser, valid: ValidSubmission) -> Job:
    # Under the user's (and team's) row lock until the commit: parallel submits count in turn.
    quotas.queued_jobs_check(user=user, team=valid.team)
    job = job_unsaved(user=user, valid=valid)
    job.save(force_insert=True)
    events.job_state_changed(job, attempt_id=None)
    request_schedule()
    return job


# ---- cancel ----------------------------------------------------------------------------------


def _active_attempt(job_id: int) -> Attempt | None:
    return (
        Attempt.objects.filter(job_id=job_id, state__in=Attempt.ACTIVE).order_by("-number").first()
    )


@transaction.atomic
def job_cancel(*, user: AbstractBaseUser, job: Job) -> Job:
    """Cancel `job`: a queued job at once; a placed one moves to CANCELLING and its nodes are
    told to stop; it is CANCELLED when they report back (or are lost). Terminal: unchanged.
    Calling it again on a CANCELLING job repeats the message to the nodes (messages are hints).
    """
    if not jobs_visible_to(user).filter(pk=job.pk).exists():
        raise PermissionDenied("You cannot cancel this job.")
    # The row lock orders this against the scheduler's claim and against attempt reports.
    current = Job.objects.select_for_update().get(pk=job.pk)
    attempt = _active_attempt(job.pk) if current.state not in Job.TERMINAL else None
    move = lifecycle.on_cancel(
        state=current.state, has_active_attempt=attempt is not None, who=user.get_username()
    )
    if move is not None and transitions.job_move(current, move):
        request_schedule()
    if attempt is not None:
        # Also when it was CANCELLING already: the message to the nodes is repeated.
        attempt_stop_unfinished(attempt)
    job.refresh_from_db()
    return job


@transaction.atomic
def job_stop(*, job_id: int, who: str) -> bool:
    """Cancel a job on the portal's own decision (`who`: the policy that decided, e.g. an idle
    job's pool policy), as `job_cancel` does for a user. False if it had finished already."""
    current = Job.objects.select_for_update().get(pk=job_id)
    if current.state in Job.TERMINAL:
        return False
    attempt = _active_attempt(job_id)
    move = lifecycle.on_cancel(state=current.state, has_active_attempt=attempt is not None, who=who)
    if move is None or not transitions.job_move(current, move):
        return False
    request_schedule()
    if attempt is not None:
        attempt_stop_unfinished(attempt)
    return True


def jobs_cancel(*, user: AbstractBaseUser, job_ids: Collection[int]) -> list[Job]:
    """Cancel each of the jobs `user` may see among `job_ids` (the job list's "Cancel
    selected"), each in a transaction of its own as `job_cancel` does one; ids of jobs they
    may not see are skipped, as if they did not exist. Returns the jobs that were still
    unfinished, as they are after the cancel."""
    pending = jobs_visible_to(user).filter(pk__in=list(job_ids)).exclude(state__in=Job.TERMINAL)
    return [job_cancel(user=user, job=job) for job in pending.order_by("pk")]


# ---- attempt reports -------------------------------------------------------------------------


def _locked_attempt(attempt_id: int, job_id: int | None = None) -> Attempt | None:
    """The attempt, row-locked, if it exists and belongs to `job_id`."""
    attempt = Attempt.objects.select_for_update().filter(pk=attempt_id).first()
    if attempt is None or (job_id is not None and attempt.job_id != job_id):
        logger.info("ignoring a report about unknown attempt %s (job %s)", attempt_id, job_id)
        return None
    return attempt


def _locked_active_attempt(attempt_id: int, job_id: int | None = None) -> Attempt | None:
    """The attempt, row-locked, if it exists, belongs to `job_id` and has not ended."""
    attempt = _locked_attempt(attempt_id, job_id)
    if attempt is None:
        return None
    if attempt.state not in Attempt.ACTIVE:
        logger.info("ignoring a report about attempt %s, already %s", attempt_id, attempt.state)
        return None
    return attempt


def attempt_started(entry: AttemptStartedEntry) -> bool:
    """A node started its share of an attempt. True if it changed anything."""
    with transaction.atomic():
        attempt = _locked_active_attempt(entry.attempt, entry.job)
        if attempt is None:
            return False
        now = timezone.now()
        if not Placement.objects.filter(
            attempt=attempt,
            node_rank=entry.node_rank,
            node__name=entry.node,
            started_at__isnull=True,
        ).update(started_at=now):
            return False  # a repeated report, or one about a placement this attempt lacks
        Attempt.objects.filter(pk=attempt.pk, state=Attempt.State.STARTING).update(
            state=Attempt.State.RUNNING, started_at=now
        )
        job = Job.objects.get(pk=attempt.job_id)
        move = lifecycle.on_start(state=job.state, number=attempt.number)
        if move is not None:
            transitions.job_move(job, move, attempt_id=attempt.pk, now=now)
        return True


def attempt_exited(entry: AttemptExitedEntry) -> bool:
    """A node's share of an attempt exited. The attempt succeeds when every share exited 0;
    the first share that fails (or was cancelled) ends it and stops the others. A failure the
    node marks as not retryable fails the job even when restarts remain.

    The exit of a share whose attempt has already ended (a node of a failed gang that stopped
    as told) changes only its placement: the node's capacity is free from then on."""
    with transaction.atomic():
        attempt = _locked_attempt(entry.attempt, entry.job)
        if attempt is None:
            return False
        rank, code = entry.node_rank, entry.exit_code
        now = timezone.now()
        if not Placement.objects.filter(
            attempt=attempt, node_rank=rank, node__name=entry.node, finished_at__isnull=True
        ).update(exit_code=code, finished_at=now, started_at=Coalesce(F("started_at"), now)):
            return False
        if attempt.state not in Attempt.ACTIVE:
            logger.info("attempt %s (%s): rank %s has stopped", attempt.pk, attempt.state, rank)
            request_schedule()
            return True
        detail = entry.reason.strip().rstrip(".")
        where = f"on {entry.node} (rank {rank})"
        if attempt.preempted_by_id is not None and (entry.cancelled or code != 0):
            # The scheduler stopped it (docs/scheduling.md, Preemption): however its ranks
            # went, the job goes back to the queue without using up a restart.
            _attempt_finish(
                attempt, Attempt.State.PREEMPTED, reason=preempted_words(attempt), exit_code=code
            )
        elif entry.cancelled:
            reason = f"{detail or 'cancelled'} {where}"
            _attempt_finish(attempt, Attempt.State.CANCELLED, reason=reason, exit_code=code)
        elif code != 0:
            reason = f"{detail or f'exit code {code}'} {where}"
            retryable = entry.retryable
            _attempt_finish(
                attempt, Attempt.State.FAILED, reason=reason, exit_code=code, retryable=retryable
            )
            if retryable:
                # The failure that ended the attempt, and one that bad data or a bad spec
                # would not explain: it counts against the node (a bad GPU, a full disk).
                _count_on_node(attempt, rank, failed=True, reason=reason)
        else:
            _count_on_node(attempt, rank, failed=False, reason="")
            if not Placement.objects.filter(attempt=attempt, finished_at__isnull=True).exists():
                # Every share exited, and any non-zero exit would already have ended it.
                _attempt_finish(attempt, Attempt.State.SUCCEEDED, reason="", exit_code=0)
        return True


def _count_on_node(attempt: Attempt, rank: int, *, failed: bool, reason: str) -> None:
    node_id = (
        Placement.objects.filter(attempt=attempt, node_rank=rank)
        .values_list("node_id", flat=True)
        .get()
    )
    node_share_exited(node_id=node_id, failed=failed, reason=reason)


def checkpoint_recorded(entry: CheckpointSavedEntry) -> bool:
    """A trainer wrote a checkpoint whole. True if it was accepted. Fenced like metrics: the
    attempt must be its job's latest and not lost (a checkpoint may be read after its
    attempt's exit, so an ended attempt still counts), and the file must be under the
    attempt's own directory. A repeated report changes nothing (unique `(attempt, name)`)."""
    prefix = f"attempt-{entry.attempt}/"
    rest = entry.name.removeprefix(prefix)
    if rest == entry.name or not rest or any(part in ("", ".", "..") for part in rest.split("/")):
        logger.warning(
            "ignoring checkpoint %r of attempt %s: not its own", entry.name, entry.attempt
        )
        return False
    if not attempt_is_current(attempt_id=entry.attempt, job_id=entry.job):
        logger.info("ignoring checkpoint %r of superseded attempt %s", entry.name, entry.attempt)
        return False
    Checkpoint.objects.bulk_create(
        [
            Checkpoint(
                job_id=entry.job,
                attempt_id=entry.attempt,
                epoch=entry.epoch,
                step=entry.step,
                name=entry.name,
                sha256=entry.sha256,
                size_bytes=entry.size_bytes,
                val_loss=entry.val_loss,
                val_accuracy=entry.val_accuracy,
                is_best=entry.is_best,
                created_at=datetime.fromtimestamp(entry.ts, tz=UTC),
            )
        ],
        ignore_conflicts=True,
    )
    return True


def attempt_lost(*, attempt_id: int, reason: str) -> bool:
    """The control plane gave up on an attempt (its node went offline, or does not have it)."""
    with transaction.atomic():
        attempt = _locked_active_attempt(attempt_id)
        if attempt is None:
            return False
        _attempt_finish(attempt, Attempt.State.LOST, reason=reason, exit_code=None)
        return True


def attempt_timed_out(*, attempt_id: int) -> bool:
    """The attempt ran past its job's maximum run time: it is stopped on every node (the
    cancel path) and its job fails with that reason, not retried: another attempt would be
    stopped the same way, and backfill promised its capacity to a reservation."""
    with transaction.atomic():
        attempt = _locked_active_attempt(attempt_id)
        if attempt is None:
            return False
        limit = Job.objects.values_list("max_run_time_s", flat=True).get(pk=attempt.job_id)
        _attempt_finish(
            attempt,
            Attempt.State.CANCELLED,
            reason=f"it ran past its maximum run time of {_duration(limit)}",
            exit_code=None,
            retryable=False,
        )
        return True


def _duration(seconds: int) -> str:
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min" if minutes else f"{seconds} s"


def placements_release(*, node: Node, attempt_ids: Collection[int]) -> int:
    """Record that `node` no longer holds its share of these *ended* attempts (it neither
    runs nor claims them, and its exit report never came), so its capacity is free again.
    Shares of active attempts are left alone: lose the attempt first. Returns how many."""
    if not attempt_ids:
        return 0
    released = (
        Placement.objects.filter(
            node=node, attempt_id__in=list(attempt_ids), finished_at__isnull=True
        )
        .exclude(attempt__state__in=Attempt.ACTIVE)
        .update(finished_at=timezone.now())
    )
    if released:
        logger.info("node %s: released %d placement(s) it no longer holds", node.name, released)
        request_schedule()
    return released


def preempted_words(attempt: Attempt) -> str:
    """`preempted by job #12 at 2026-12-02 14:03:07 UTC`: how the job page tells it."""
    at = f" at {attempt.preempted_at:%Y-%m-%d %H:%M:%S} UTC" if attempt.preempted_at else ""
    return f"preempted by job #{attempt.preempted_by_id}{at}"


def _attempt_finish(
    attempt: Attempt,
    outcome: str,
    *,
    reason: str,
    exit_code: int | None,
    retryable: bool = True,
) -> None:
    """End `attempt` (its row lock held) and move its job on. The nodes that have not exited
    are told to stop; each placement's capacity is free once its node reports (or, for a lost
    attempt, at once: see `placements_holding_capacity`)."""
    now = timezone.now()
    reason = reason.strip().rstrip(".")
    Attempt.objects.filter(pk=attempt.pk, state__in=Attempt.ACTIVE).update(
        state=outcome, reason=reason, exit_code=exit_code, finished_at=now
    )
    if outcome != Attempt.State.SUCCEEDED:
        attempt_stop_unfinished(attempt)
    job = Job.objects.select_for_update().get(pk=attempt.job_id)
    move = lifecycle.after_attempt(
        state=job.state,
        outcome=outcome,
        number=attempt.number,
        reason=reason,
        restarts=job.restarts,
        max_restarts=job.max_restarts,
        retryable=retryable,
    )
    if move is None:
        logger.error("attempt %s ended while job %s was %s", attempt.pk, job.pk, job.state)
        return
    if transitions.job_move(job, move, attempt_id=attempt.pk, now=now) and move.preempted:
        signals.job_flagged_on_commit(job, flag="preempted", detail=move.reason)
    # Capacity was freed (the reporting node's share, or all of a lost attempt's), and a
    # requeued job wants placing.
    request_schedule()
