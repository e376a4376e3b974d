"""Factories and personas shared by the whole suite. Import these; don't copy setup."""

from __future__ import annotations

import itertools
import time
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, User
from django.utils import timezone

from portal.accounts.models import Team
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import IRIS_SLUG, MLP_SLUG, catalog_ensure_builtins
from portal.cluster.models import Node
from portal.jobs.models import Attempt, Job, MetricPoint, Placement
from portal.jobs.schemas import JobRequest
from workers.messages import HealthEntry

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


def make_user(username: str | None = None, *, is_staff: bool = False) -> User:
    username = username or f"user{next(_counter)}"
    user = User.objects.create_user(
        username=username, password=PASSWORD, email=f"{username}@example.test"
    )
    if is_staff:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return user


def make_team(name: str, *members: User) -> Team:
    team = Team.objects.create(name=name)
    team.members.add(*members)
    return team


def make_node(name: str | None = None, **fields: Any) -> Node:
    defaults: dict[str, Any] = {
        "hostname": "localhost",
        "address": "127.0.0.1",
        "cpu_slots": 4,
        "gpu_count": 0,
        "state": Node.State.ONLINE,
        "last_heartbeat_at": timezone.now(),
    }
    defaults.update(fields)
    return Node.objects.create(name=name or f"node{next(_counter)}", **defaults)


def make_dataset(
    owner: AbstractBaseUser | None, *, name: str | None = None, **fields: Any
) -> Dataset:
    """A ready tabular classification dataset version (two numeric features, two classes);
    `fields` override any column. Its file is not stored: only the row, as validation
    leaves it."""
    name = name or f"dataset{next(_counter)}"
    values: dict[str, Any] = {
        "slug": "",
        "name": name,
        "owner_id": owner.pk if owner is not None else None,
        "state": Dataset.State.READY,
        "uri": f"file:///nonexistent/{name}.csv",
        "sha256": "0" * 64,
        "format": Dataset.Format.CSV,
        "task": Dataset.Task.CLASSIFICATION,
        "target": "y",
        "classes": ["no", "yes"],
        "features": [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}],
        "input_shape": [2],
        "num_rows": 10,
        "preprocessing": {
            "missing": "drop",
            "normalization": "none",
            "split_seed": 0,
            "val_fraction": 0.2,
            "test_fraction": 0.0,
        },
    }
    if owner is not None and "team" not in fields:
        values["team"] = Team.objects.filter(members=owner.pk).order_by("name").first()
    values |= fields
    if "version" not in values:
        # The owner's next version of the name, as an upload would number it.
        values["version"] = (
            Dataset.objects.filter(owner_id=values["owner_id"], name=name).count() + 1
        )
    return Dataset.objects.create(**values)


def make_job(
    owner: AbstractBaseUser,
    *,
    state: str = Job.State.QUEUED,
    team: Team | None = None,
    name: str | None = None,
    **fields: Any,
) -> Job:
    """A job on the built-in Iris dataset and MLP, stored directly in `state` (no scheduling)."""
    catalog_ensure_builtins()
    dataset = Dataset.objects.get(slug=IRIS_SLUG)
    model = ModelArchitecture.objects.get(slug=MLP_SLUG)
    name = name or f"job{next(_counter)}"
    request = JobRequest(name=name, dataset=dataset.pk, model=model.pk)
    return Job.objects.create(
        owner_id=owner.pk,
        team=team,
        name=name,
        dataset=dataset,
        model=model,
        spec=request.model_dump(mode="json"),
        state=state,
        **fields,
    )


def make_attempt(
    job: Job,
    *,
    nodes: list[Node] | tuple[Node, ...] = (),
    state: str = Attempt.State.RUNNING,
    number: int | None = None,
) -> Attempt:
    """The job's next attempt, placed on `nodes` (rank = position), as the scheduler records it."""
    if number is None:
        number = Attempt.objects.filter(job=job).count() + 1
    attempt = Attempt.objects.create(
        job=job, number=number, state=state, master_addr="127.0.0.1", master_port=29500
    )
    Placement.objects.bulk_create(
        Placement(attempt=attempt, node=node, node_rank=rank, slots=job.slots_per_node)
        for rank, node in enumerate(nodes)
    )
    return attempt


def make_heartbeat(name: str, **fields: Any) -> HealthEntry:
    """A node's heartbeat as ingest receives it; `fields` override the defaults."""
    values: dict[str, Any] = {
        "node": name,
        "hostname": "box",
        "address": "10.1.2.3",
        "pool": "default",
        "labels": {},
        "cpu_slots": 4,
        "gpu_count": 0,
        "cpu_percent": 10.0,
        "memory_used": 1,
        "memory_total": 2,
        "disk_used": 3,
        "disk_total": 4,
        "gpus": [],
        "running_attempts": [],
        "claimed_attempts": [],
        "ts": time.time(),
    }
    return HealthEntry(**(values | fields))


def small_csv(rows: int = 12) -> bytes:
    """A valid CSV for classification: two numeric features and a `label` with two classes."""
    lines = ["height,width,label"]
    lines += [f"{i + 0.5},{(i * 7) % 5},{'big' if i % 2 else 'small'}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def make_metric_points(
    job: Job, *, losses: list[float], accuracies: list[float], attempt: Attempt | None = None
) -> Attempt:
    """A train and a val point per epoch (step 10 per epoch; train loss 0.1 above val), as
    ingest stores them, under `attempt` (a new succeeded one when None)."""
    attempt = attempt or make_attempt(job, state=Attempt.State.SUCCEEDED)
    rows: list[MetricPoint] = []
    for epoch, (loss, accuracy) in enumerate(zip(losses, accuracies, strict=True)):
        for split in ("train", "val"):
            rows.append(
                MetricPoint(
                    job=job,
                    attempt=attempt,
                    seq=len(rows),
                    split=split,
                    step=epoch * 10,
                    epoch=epoch,
                    loss=loss + (0.1 if split == "train" else 0.0),
                    accuracy=accuracy,
                    reported_at=timezone.now(),
                )
            )
    MetricPoint.objects.bulk_create(rows)
    return attempt
