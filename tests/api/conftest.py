"""API test helpers: an APIClient holding a bearer token, and a cluster jobs can be queued on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from portal.accounts.models import ApiToken
from portal.accounts.services import api_token_create
from portal.catalog.models import Dataset, ModelArchitecture
from portal.cluster.models import Node

TokenClient = Callable[..., APIClient]
Upload = Callable[..., Any]


@pytest.fixture
def client_for(db: None) -> TokenClient:
    """`client_for(user, scope="write")`: an APIClient that sends a fresh token for `user`."""

    def make(user: User, scope: str = ApiToken.Scope.WRITE) -> APIClient:
        issued = api_token_create(user=user, name="test", scope=scope, expires_in=timedelta(days=1))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
        return client

    return make


@pytest.fixture
def job_body(iris: Dataset, mlp: ModelArchitecture, cpu_node: Node) -> dict[str, Any]:
    """A valid request for the built-in Iris and MLP on a 2-slot CPU node; tests change it."""
    return {
        "name": "iris-mlp",
        "dataset": iris.pk,
        "model": mlp.pk,
        "training": {"epochs": 2, "learning_rate": 0.05},
        "resources": {"nodes": 1, "procs_per_node": 2},
    }


@pytest.fixture
def submit(client_for: TokenClient, job_body: dict[str, Any]) -> Callable[[User], int]:
    """`submit(user)` queues the standard job as `user` through the API and returns its id."""

    def run(user: User, **changes: Any) -> int:
        response = client_for(user).post("/api/v1/jobs/", {**job_body, **changes}, format="json")
        assert response.status_code == 201, response.json()
        job_id: int = response.json()["id"]
        return job_id

    return run


@pytest.fixture
def upload(client_for: TokenClient, storage_root: Any) -> Upload:
    """`upload(user, content, filename="data.csv", **fields)`: POST /api/v1/datasets/ as a
    multipart form (target `label` unless given), answering the response."""

    def send(user: User, content: bytes, filename: str = "data.csv", **fields: Any) -> Any:
        form: dict[str, Any] = {"target": "label", **fields}
        form = {key: value for key, value in form.items() if value is not None}
        form["file"] = SimpleUploadedFile(filename, content)
        return client_for(user).post("/api/v1/datasets/", form, format="multipart")

    return send
