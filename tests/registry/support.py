"""Model registry test helpers: a ready dataset version, a job that succeeded with an export
as the trainer writes it, and a registered version. Rows are stored directly (no scheduling,
no training); the end-to-end tests train for real."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from portal.catalog.models import Dataset, ModelArchitecture
from portal.jobs.models import Attempt, Checkpoint, Job
from portal.registry.models import ModelVersion
from portal.registry.services import (
    MANIFEST_FILE,
    SAFETENSORS_FILE,
    TORCHSCRIPT_FILE,
    export_dir,
    model_version_register,
)

_counter = itertools.count(1)
PREPROCESSING = {
    "missing": "drop",
    "normalization": "minmax",
    "split_seed": 0,
    "val_fraction": 0.25,
    "test_fraction": 0.0,
}


def make_dataset(owner: User, *, name: str = "flowers") -> Dataset:
    """A ready CSV version with two numeric features and two classes."""
    return Dataset.objects.create(
        name=name,
        version=next(_counter),
        owner=owner,
        team=owner.teams.order_by("name").first(),
        state=Dataset.State.READY,
        uri=f"file:///srv/data/{name}.csv",
        sha256=hashlib.sha256(name.encode()).hexdigest(),
        format=Dataset.Format.CSV,
        task=Dataset.Task.CLASSIFICATION,
        target="label",
        preprocessing=PREPROCESSING,
        features=[
            {"name": "a", "kind": "numeric", "shift": 0.0, "scale": 1.0},
            {"name": "b", "kind": "numeric", "shift": 0.0, "scale": 2.0},
        ],
        classes=["no", "yes"],
        input_shape=[2],
        num_rows=40,
        preview=[{"a": "0.5", "b": "1.0", "label": "yes"}],
    )


def make_model(owner: User | None = None) -> ModelArchitecture:
    return ModelArchitecture.objects.create(
        slug=f"mlp-{next(_counter)}",
        name="MLP",
        family=ModelArchitecture.Family.MLP,
        default_params={"hidden_sizes": [4]},
        owner=owner,
        is_public=owner is None,
    )


def make_trained_job(
    owner: User,
    *,
    state: str = Job.State.SUCCEEDED,
    dataset: Dataset | None = None,
    export: bool = True,
    manifest: dict[str, Any] | None = None,
) -> Job:
    """A job in `state` with one attempt; when it succeeded, a best checkpoint reported by
    ingest and (with `export`) the trainer's export files under the job's checkpoint dir."""
    dataset = dataset or make_dataset(owner)
    job = Job.objects.create(
        owner=owner,
        team=owner.teams.order_by("name").first(),
        name=f"job{next(_counter)}",
        dataset=dataset,
        model=make_model(),
        spec={"training": {"epochs": 3, "learning_rate": 0.05}},
        state=state,
    )
    finished = state == Job.State.SUCCEEDED
    attempt = Attempt.objects.create(
        job=job,
        number=1,
        state=Attempt.State.SUCCEEDED if finished else Attempt.State.RUNNING,
        master_addr="127.0.0.1",
        master_port=29500,
        finished_at=timezone.now() if finished else None,
    )
    if not finished:
        return job
    for epoch, (loss, accuracy, best) in enumerate(
        [(0.9, 0.5, True), (0.4, 0.8, True), (0.6, 0.7, False)], start=1
    ):
        Checkpoint.objects.create(
            job=job,
            attempt=attempt,
            epoch=epoch,
            step=epoch * 10,
            name=f"attempt-{attempt.pk}/epoch-{epoch}.pt",
            sha256=hashlib.sha256(f"{epoch}".encode()).hexdigest(),
            size_bytes=100,
            val_loss=loss,
            val_accuracy=accuracy,
            is_best=best,
            created_at=timezone.now(),
        )
    if export:
        write_export(job, attempt, manifest=manifest)
    return job


def write_export(job: Job, attempt: Attempt, *, manifest: dict[str, Any] | None = None) -> Path:
    directory = export_dir(job, attempt)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SAFETENSORS_FILE).write_bytes(b"weights of " + job.name.encode())
    (directory / TORCHSCRIPT_FILE).write_bytes(b"program of " + job.name.encode())
    body = manifest or {
        "model": {"architecture": "mlp", "hidden_sizes": [4]},
        "input_shape": [2],
        "outputs": 2,
        "task": "classification",
        "classes": ["no", "yes"],
        "target_shift": 0.0,
        "target_scale": 1.0,
        "dataset_sha256": job.dataset.sha256,
        "checkpoint": "attempt-1/best.pt",
        "epoch": 3,
        "best_metric": "val_loss",
        "best_value": 0.25,
        "torchscript": True,
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(body))
    return directory


def make_model_version(owner: User, *, name: str = "flower-classifier") -> ModelVersion:
    return model_version_register(user=owner, job=make_trained_job(owner), name=name)


def signed_in(user: User) -> Client:
    """A browser session for `user`."""
    client = Client()
    client.force_login(user)
    return client
