"""Comparing runs: which jobs, their settings as a diff table, and their metrics side by side.

The page (`/jobs/compare/?jobs=3,5,8`) is a shareable URL; any id the viewer may not see makes
the whole page a 404, as a job page would be (an id reveals nothing). The curves are drawn in
the browser from the metric points API, one series per job; what the server adds is the
settings diff and each job's final and best metrics, read in a fixed number of queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Max, Min, Q
from django.http import Http404

from portal.jobs.models import Job, MetricPoint
from portal.jobs.selectors import jobs_visible_to

MAX_COMPARED = 10
# The settings the diff table shows, in this order, with the spec paths they come from;
# the hyperparameters follow, each under its own name.
SETTING_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Dataset", ("dataset",)),
    ("Model", ("model",)),
    ("Epochs", ("training", "epochs")),
    ("Batch size", ("training", "batch_size")),
    ("Learning rate", ("training", "learning_rate")),
    ("Optimizer", ("training", "optimizer")),
    ("Loss", ("training", "loss")),
    ("Seed", ("training", "seed")),
    ("Nodes", ("resources", "nodes")),
    ("Processes per node", ("resources", "procs_per_node")),
    ("GPUs per node", ("resources", "gpus_per_node")),
)


def compare_ids(text: str) -> list[int]:
    """The job ids of `?jobs=3,5,8`, in order, without repeats; Http404 for anything that is
    not a list of 1 to MAX_COMPARED ids (a shared link either works whole or not at all)."""
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 0 < int(part) < 2**63:
            raise Http404("Give the jobs to compare as ids: ?jobs=3,5,8.")
        if int(part) not in ids:
            ids.append(int(part))
    if not 0 < len(ids) <= MAX_COMPARED:
        raise Http404(f"Compare 1 to {MAX_COMPARED} jobs.")
    return ids


def jobs_compared(*, user: AbstractBaseUser | AnonymousUser, job_ids: list[int]) -> list[Job]:
    """The jobs, in the order asked, if the user may see every one; Http404 otherwise."""
    found = {
        job.pk: job
        for job in jobs_visible_to(user)
        .filter(pk__in=job_ids)
        .select_related("owner", "dataset", "model")
    }
    if len(found) != len(job_ids):
        raise Http404("No such job.")
    return [found[pk] for pk in job_ids]


@dataclass(frozen=True)
class MetricSummary:
    """A job's metrics at a glance: the last validation point's, and the best of all."""

    points: int = 0
    final_val_loss: float | None = None
    final_val_accuracy: float | None = None
    best_val_loss: float | None = None
    best_val_accuracy: float | None = None
    final_train_loss: float | None = None


def metric_summaries(jobs: list[Job]) -> dict[int, MetricSummary]:
    """Each job's `MetricSummary`, in three queries whatever the number of jobs."""
    ids = [job.pk for job in jobs]
    points = MetricPoint.objects.filter(job_id__in=ids)
    val = Q(split=MetricPoint.Split.VAL)
    totals = {
        row["job_id"]: row
        for row in points.values("job_id").annotate(
            count=Count("id"),
            best_loss=Min("loss", filter=val),
            best_accuracy=Max("accuracy", filter=val),
        )
    }

    def last(split: str) -> dict[int, MetricPoint]:
        # The newest attempt's newest point of the split, per job (DISTINCT ON job).
        newest = (
            points.filter(split=split)
            .order_by("job_id", "-attempt_id", "-seq")
            .distinct("job_id")
            .only("job_id", "loss", "accuracy")
        )
        return {point.job_id: point for point in newest}

    final_val, final_train = last(MetricPoint.Split.VAL), last(MetricPoint.Split.TRAIN)
    summaries: dict[int, MetricSummary] = {}
    for pk in ids:
        total = totals.get(pk)
        if total is None:
            summaries[pk] = MetricSummary()
            continue
        summaries[pk] = MetricSummary(
            points=total["count"],
            final_val_loss=final_val[pk].loss if pk in final_val else None,
            final_val_accuracy=final_val[pk].accuracy if pk in final_val else None,
            best_val_loss=total["best_loss"],
            best_val_accuracy=total["best_accuracy"],
            final_train_loss=final_train[pk].loss if pk in final_train else None,
        )
    return summaries


@dataclass(frozen=True)
class DiffRow:
    """One setting across the compared jobs; `differs` when not every job has the same."""

    label: str
    values: list[str]
    differs: bool


def _at(spec: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        spec = spec.get(part) if isinstance(spec, dict) else None
    return spec


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def settings_diff(jobs: list[Job]) -> list[DiffRow]:
    """The settings and hyperparameters of `jobs` as rows, one value per job (a hyperparameter
    one job's model does not have shows as "—", which differs)."""
    rows: list[DiffRow] = []
    names = {
        "dataset": {j.pk: j.dataset.name for j in jobs},
        "model": {j.pk: j.model.name for j in jobs},
    }
    for label, path in SETTING_ROWS:
        if path[0] in names:
            values = [names[path[0]][job.pk] for job in jobs]
        else:
            values = [_shown(_at(job.spec, path)) for job in jobs]
        rows.append(DiffRow(label, values, len(set(values)) > 1))
    hyper: list[str] = []
    for job in jobs:
        for name in _at(job.spec, ("hyperparameters",)) or {}:
            if name not in hyper:
                hyper.append(name)
    for name in hyper:
        values = [_shown(_at(job.spec, ("hyperparameters", name))) for job in jobs]
        rows.append(DiffRow(name.replace("_", " ").capitalize(), values, len(set(values)) > 1))
    return rows
