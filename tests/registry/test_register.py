"""Registering a job's best checkpoint: only a succeeded job with an export, with its lineage."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.models import User
from django.db.models import ProtectedError

from portal.audit.models import AuditEvent
from portal.jobs.models import Job
from portal.registry.models import ModelVersion
from portal.registry.services import SAFETENSORS_FILE, export_dir
from tests.registry.conftest import TokenClient
from tests.registry.support import make_model_version, make_trained_job, write_export


def test_it_registers_the_best_checkpoint_with_its_lineage_and_an_audit_entry(
    api: TokenClient, owner: User
) -> None:
    job = make_trained_job(owner)

    response = api(owner).post(
        "/api/v1/model-versions/", {"job": job.pk, "name": "flowers"}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    version = ModelVersion.objects.get(pk=body["id"])
    assert (body["name"], body["version"]) == ("flowers", 1)
    # The last checkpoint reported as best (epoch 2), not the last one (epoch 3).
    assert body["metrics"] == {"epoch": 2, "val_loss": 0.4, "val_accuracy": 0.8}
    assert body["job"]["id"] == job.pk
    assert body["job"]["checkpoint"].endswith("/epoch-2.pt")
    assert body["dataset"]["id"] == job.dataset_id
    assert body["dataset"]["preprocessing"]["normalization"] == "minmax"
    assert body["architecture"]["architecture"] == "mlp"
    assert body["architecture"]["hidden_sizes"] == [4]
    assert body["hyperparameters"] == job.spec
    weights = export_dir(job, version.attempt) / SAFETENSORS_FILE
    assert (
        body["files"]["safetensors"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    )
    assert "uri" not in str(body)
    event = AuditEvent.objects.get(action=AuditEvent.Action.MODEL_VERSION_REGISTERED)
    assert event.actor == owner
    assert event.target == "flowers v1"
    assert event.details["job"] == job.pk


def test_registering_the_name_again_makes_the_next_version(api: TokenClient, owner: User) -> None:
    client = api(owner)
    for _ in range(2):
        job = make_trained_job(owner)
        response = client.post(
            "/api/v1/model-versions/", {"job": job.pk, "name": "flowers"}, format="json"
        )
        assert response.status_code == 201, response.json()

    assert response.json()["version"] == 2


def test_the_same_job_under_the_same_name_is_refused(api: TokenClient, owner: User) -> None:
    job = make_trained_job(owner)
    client = api(owner)
    client.post("/api/v1/model-versions/", {"job": job.pk, "name": "flowers"}, format="json")

    response = client.post(
        "/api/v1/model-versions/", {"job": job.pk, "name": "flowers"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"]["name"] == [f"Job #{job.pk} is already registered as flowers."]


@pytest.mark.parametrize("state", [Job.State.QUEUED, Job.State.RUNNING, Job.State.FAILED])
def test_it_refuses_a_job_that_has_not_succeeded(api: TokenClient, owner: User, state: str) -> None:
    job = make_trained_job(owner, state=state)

    response = api(owner).post(
        "/api/v1/model-versions/", {"job": job.pk, "name": "flowers"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"]["job"] == [
        f"Job #{job.pk} is {state}: only a succeeded job's best checkpoint can be registered."
    ]
    assert not ModelVersion.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_VERSION_REGISTERED)


def test_it_refuses_a_succeeded_job_with_no_export_yet(api: TokenClient, owner: User) -> None:
    job = make_trained_job(owner, export=False)

    response = api(owner).post(
        "/api/v1/model-versions/", {"job": job.pk, "name": "flowers"}, format="json"
    )

    assert response.status_code == 400
    [message] = response.json()["errors"]["job"]
    assert message.startswith(f"Job #{job.pk} has no export yet (model.safetensors, ")
    assert "when the job succeeds" in message


def test_it_refuses_an_export_trained_on_other_bytes(api: TokenClient, owner: User) -> None:
    job = make_trained_job(owner, export=False)
    manifest = {
        "model": {"architecture": "linear"},
        "input_shape": [2],
        "outputs": 2,
        "task": "classification",
        "classes": ["no", "yes"],
        "target_shift": 0.0,
        "target_scale": 1.0,
        "dataset_sha256": "f" * 64,
        "checkpoint": "attempt-1/best.pt",
        "epoch": 2,
        "best_metric": "val_loss",
        "best_value": 0.4,
        "torchscript": True,
    }
    write_export(job, job.attempts.get(), manifest=manifest)

    response = api(owner).post(
        "/api/v1/model-versions/", {"job": job.pk, "name": "flowers"}, format="json"
    )

    assert response.status_code == 400
    assert "was trained on dataset bytes ffff" in response.json()["errors"]["job"][0]


@pytest.mark.parametrize("name", ["", "   ", "bad\u202ename", "x" * 201])
def test_it_refuses_a_bad_name(api: TokenClient, owner: User, name: str) -> None:
    job = make_trained_job(owner)

    response = api(owner).post(
        "/api/v1/model-versions/", {"job": job.pk, "name": name}, format="json"
    )

    assert response.status_code == 400
    assert "name" in response.json()["errors"]


def test_a_read_only_token_cannot_register(api: TokenClient, owner: User) -> None:
    job = make_trained_job(owner)

    response = api(owner, scope="read").post(
        "/api/v1/model-versions/", {"job": job.pk, "name": "flowers"}, format="json"
    )

    assert response.status_code == 403
    assert not ModelVersion.objects.exists()


def test_a_registered_job_and_its_dataset_cannot_be_deleted(owner: User) -> None:
    version = make_model_version(owner)

    with pytest.raises(ProtectedError):
        version.job.delete()
    with pytest.raises(ProtectedError):
        version.dataset.delete()
