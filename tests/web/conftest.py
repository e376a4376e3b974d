"""Helpers for the page tests: a CPU node jobs fit on, a valid job form, a job to look at."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from portal.catalog.models import Dataset, ModelArchitecture
from portal.cluster.models import Node
from portal.jobs.models import Job
from portal.jobs.schemas import JobRequest, Resources
from portal.jobs.services import job_submit
from tests.factories import make_node


@pytest.fixture
def cpu_node(db: None) -> Node:
    return make_node(cpu_slots=2)


@pytest.fixture
def job_form_data(iris: Dataset, mlp: ModelArchitecture, cpu_node: Node) -> dict[str, Any]:
    """What the browser posts for a small, valid Iris job. Tests copy and change it."""
    return {
        "name": "iris-from-the-form",
        "dataset": str(iris.pk),
        "model": str(mlp.pk),
        "hidden_sizes": "16,8",
        "activation": "tanh",
        "dropout": "0.1",
        "epochs": "5",
        "batch_size": "16",
        "learning_rate": "0.05",
        "optimizer": "sgd",
        "loss": "cross_entropy",
        "seed": "7",
        "val_fraction": "0.25",
        "nodes": "1",
        "procs_per_node": "2",
        "gpus_per_node": "0",
        "priority": "0",
        "max_restarts": "0",
    }


@pytest.fixture
def make_job(iris: Dataset, mlp: ModelArchitecture, cpu_node: Node) -> Any:
    """`make_job(user)` queues a job for `user` through the real service."""

    def make(user: User, name: str = "iris") -> Job:
        request = JobRequest(
            name=name, dataset=iris.pk, model=mlp.pk, resources=Resources(procs_per_node=1)
        )
        return job_submit(user=user, request=request)

    return make
