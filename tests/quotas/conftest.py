"""Quota tests: GPU nodes as rows with `gpu_count` (as a heartbeat would register them), and
a custom-code model, which submits without the dry run (custom code is checked on nodes), so
a test can submit hundreds of jobs quickly through the real `job_submit`."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from portal.accounts.models import Quota, Team
from portal.catalog.models import Dataset, ModelArchitecture
from portal.cluster.models import Node
from portal.jobs.models import Job
from portal.jobs.schemas import JobRequest
from portal.jobs.services import job_submit
from tests.jobs.helpers import node


@pytest.fixture
def custom_model(db: None) -> ModelArchitecture:
    return ModelArchitecture.objects.create(
        slug="quota-net",
        name="Quota net",
        family=ModelArchitecture.Family.CUSTOM,
        code_uri="file:///srv/storage/models/net.py",
        code_sha256="ab" * 32,
        default_params={"width": 8},
        is_public=True,
    )


def gpu_nodes(count: int, gpus: int = 8) -> list[Node]:
    return [node(gpu_count=gpus, gpu_model="NVIDIA H200") for _ in range(count)]


def gpu_job(
    user: User, dataset: Dataset, model: ModelArchitecture, gpus: int = 1, **request: Any
) -> Job:
    return job_submit(
        user=user,
        request=JobRequest.model_validate(
            {
                "dataset": dataset.pk,
                "model": model.pk,
                "resources": {"gpus_per_node": gpus},
                **request,
            }
        ),
    )


def set_quota(holder: User | Team, **limits: Any) -> Quota:
    owner = {"team": holder} if isinstance(holder, Team) else {"user": holder}
    quota, _ = Quota.objects.update_or_create(**owner, defaults=limits)
    return quota
