"""Reads for jobs: who sees which job, its telemetry after a cursor, its place in the queue."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404

from portal.accounts.models import Team
from portal.accounts.selectors import user_is_admin
from portal.jobs.models import Attempt, Checkpoint, Job, MetricPoint, Placement
from portal.jobs.scheduling import checkpoint_dir
from portal.jobs.why_pending import WhyPending


def jobs_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Job]:
    """The user's own jobs and their teams' jobs; every job for admins."""
    jobs = Job.objects.all()
    if user_is_admin(user):
        return jobs
    if not user.is_authenticated:
        return jobs.none()
    # A subquery rather than a join through members, so a job is never listed twice.
    teams = Team.objects.filter(members=user.pk).values("pk")
    return jobs.filter(Q(owner=user.pk) | Q(team__in=teams))


def jobs_filtered(
    jobs: QuerySet[Job],
    *,
    ordering: str = "-created_at",
    state: str | None = None,
    owner: str | None = None,
    dataset: int | None = None,
    model: int | None = None,
    name: str | None = None,
) -> QuerySet[Job]:
    """`jobs` narrowed by the job list's filters (`?state=&owner=&dataset=&model=&name=`) and
    sorted by `ordering` (a field, `-` for descending), the id breaking ties."""
    if state is not None:
        jobs = jobs.filter(state=state)
    if owner is not None:
        jobs = jobs.filter(owner__username=owner)
    if dataset is not None:
        jobs = jobs.filter(dataset_id=dataset)
    if model is not None:
        jobs = jobs.filter(model_id=model)
    if name is not None:
        jobs = jobs.filter(name__icontains=name)
    tie = "-id" if ordering.startswith("-") else "id"
    return jobs.order_by(ordering, tie)


def job_get_visible(*, user: AbstractBaseUser | AnonymousUser, job_id: int) -> Job:
    """The job, if the user may see it; Http404 otherwise, so an id reveals nothing."""
    job = jobs_visible_to(user).select_related("owner", "team", "dataset", "model")
    found = job.filter(pk=job_id).first()
    if found is None:
        raise Http404("No such job.")
    return found


def job_attempts(job: Job) -> QuerySet[Attempt]:
    """The job's attempts, newest first, with their placements and nodes and their phases
    (four queries)."""
    placements = Placement.objects.select_related("node")
    return job.attempts.prefetch_related(
        Prefetch("placements", queryset=placements), "phases"
    ).order_by("-number")


def job_queue_position(job: Job) -> int | None:
    """1 for the next job the scheduler considers; None unless the job is queued.

    The scheduler's order: priority (high first), then submission time, then id."""
    if job.state != Job.State.QUEUED:
        return None
    ahead = Job.objects.filter(state=Job.State.QUEUED).filter(
        Q(priority__gt=job.priority)
        | Q(priority=job.priority, created_at__lt=job.created_at)
        | Q(priority=job.priority, created_at=job.created_at, pk__lt=job.pk)
    )
    return ahead.count() + 1


def metric_points_after(
    *, job: Job, after_attempt: int = 0, after_seq: int = -1, limit: int = 5000
) -> list[MetricPoint]:
    """The job's points after the cursor `(attempt id, seq)`, in that order, at most `limit`."""
    return list(
        MetricPoint.objects.filter(job=job)
        .filter(Q(attempt_id__gt=after_attempt) | Q(attempt_id=after_attempt, seq__gt=after_seq))
        .order_by("attempt_id", "seq")[:limit]
    )


def job_checkpoints(job: Job) -> list[Checkpoint]:
    """The job's checkpoints, oldest attempt and epoch first."""
    return list(
        Checkpoint.objects.filter(job=job)
        .select_related("attempt")
        .order_by("attempt__number", "epoch", "id")
    )


def job_checkpoint_get(*, job: Job, checkpoint_id: int) -> Checkpoint:
    """One of the job's checkpoints (Http404 for another job's, or none)."""
    found = Checkpoint.objects.filter(job=job, pk=checkpoint_id).first()
    if found is None:
        raise Http404("No such checkpoint.")
    return found


def checkpoint_path(checkpoint: Checkpoint) -> Path | None:
    """The checkpoint's file, if it is still there (the trainer prunes old ones) and lies
    inside its job's checkpoint directory once every link is resolved."""
    root = checkpoint_dir(checkpoint.job).resolve()
    path = (root / checkpoint.name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


class JobAhead(TypedDict):
    """A job ahead in the queue: its owner and size only where the viewer may see the job."""

    id: int
    owner: str | None
    size: str | None


def job_size_label(*, nodes: int, gpus_per_node: int, procs_per_node: int) -> str:
    each = f"{gpus_per_node} GPU" if gpus_per_node else f"{procs_per_node} CPU slot"
    plural = "s" if (gpus_per_node or procs_per_node) != 1 else ""
    return f"{nodes} x {each}{plural}"


def why_pending_visible(
    *, user: AbstractBaseUser | AnonymousUser, records: Sequence[WhyPending | None]
) -> list[dict[str, Any] | None]:
    """The why-pending records with the jobs ahead spelled out for `user` (one query for all
    of them): every job ahead by id, its owner and size where `user` may see that job."""
    ids = {job_id for record in records if record for job_id in record["ahead"]}
    visible = {
        row["id"]: row
        for row in jobs_visible_to(user)
        .filter(pk__in=ids)
        .values("id", "owner__username", "nodes", "gpus_per_node", "procs_per_node")
    }

    def ahead(job_id: int) -> JobAhead:
        row = visible.get(job_id)
        if row is None:
            return {"id": job_id, "owner": None, "size": None}
        size = job_size_label(
            nodes=row["nodes"],
            gpus_per_node=row["gpus_per_node"],
            procs_per_node=row["procs_per_node"],
        )
        return {"id": job_id, "owner": row["owner__username"], "size": size}

    return [
        {**record, "ahead": [ahead(job_id) for job_id in record["ahead"]]} if record else None
        for record in records
    ]


def attempt_is_current(*, attempt_id: int, job_id: int) -> bool:
    """Whether `attempt_id` is `job_id`'s latest attempt and not lost: the fence for reports
    that add to a job's record (a checkpoint, a phase) from a node."""
    newer = Attempt.objects.filter(job=OuterRef("job"), number__gt=OuterRef("number"))
    return (
        Attempt.objects.filter(pk=attempt_id, job_id=job_id)
        .exclude(state=Attempt.State.LOST)
        .filter(~Exists(newer))
        .exists()
    )
