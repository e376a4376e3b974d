"""Helpers for the page tests: a valid job form, and jobs submitted through the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from portal.catalog.models import Dataset, ModelArchitecture
from portal.cluster.models import Node
from portal.jobs.models import Job
from portal.jobs.schemas import JobRequest, Resources
from portal.jobs.services import job_submit


@pytest.fixture
def job_form_data(iris: Dataset, mlp: ModelArchitecture, cpu_node: Node) -> dict[str, Any]:
    """What the browser posts for a small, valid Iris job. Tests copy and change it."""
    return {
        "name": "iris-from-the-form",
        "dataset": str(iris.pk),
        "model": str(mlp.pk),
        "hp_hidden_sizes": "16,8",
        "hp_activation": "tanh",
        "hp_dropout": "0.1",
        "hp_output": "logits",
        "epochs": "5",
        "batch_size": "16",
        "learning_rate": "0.05",
        "optimizer": "sgd",
        "loss": "cross_entropy",
        "seed": "7",
        "checkpoint_every": "2",
        "keep_last": "3",
        "best_metric": "val_accuracy",
        "nodes": "1",
        "procs_per_node": "2",
        "gpus_per_node": "0",
        "priority": "0",
        "max_restarts": "0",
    }


@pytest.fixture
def submit_job(iris: Dataset, mlp: ModelArchitecture, cpu_node: Node) -> Callable[..., Job]:
    """`submit_job(user, name="iris")` queues a job for `user` through the real service (unlike
    `tests.factories.make_job`, which stores a row in any state without scheduling)."""

    def make(user: User, name: str = "iris") -> Job:
        request = JobRequest(
            name=name, dataset=iris.pk, model=mlp.pk, resources=Resources(procs_per_node=1)
        )
        return job_submit(user=user, request=request)

    return make
