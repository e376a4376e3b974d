"""A validation that never finished (its worker died, or its message was lost) is sent
again by the periodic sweep, and validates as usual; a fresh claim is left alone. An admin
can re-queue a version that failed unexpectedly and still has its file."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import fsspec
from django.contrib.auth.models import User
from django.utils import timezone

from portal.catalog.models import Dataset
from portal.catalog.services import VALIDATE_TASK, datasets_requeue
from portal.catalog.tasks import requeue_stale_datasets, validate_dataset
from tests.api.conftest import Upload
from tests.factories import small_csv


def queued_validations(broker: Any) -> list[int]:
    return [task.args[0] for task in broker.take("control") if task.name == VALIDATE_TASK]


def test_a_claim_whose_worker_died_is_requeued_and_then_validates(
    upload: Upload, owner: User, broker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    dataset_id = upload(owner, small_csv()).json()["id"]
    long_ago = timezone.now() - timedelta(hours=1)
    Dataset.objects.filter(pk=dataset_id).update(
        state=Dataset.State.VALIDATING, validating_since=long_ago
    )

    with django_capture_on_commit_callbacks(execute=True):
        requeue_stale_datasets()

    assert queued_validations(broker) == [dataset_id]
    assert Dataset.objects.get(pk=dataset_id).state == Dataset.State.UPLOADED
    validate_dataset(dataset_id)
    assert Dataset.objects.get(pk=dataset_id).state == Dataset.State.READY


def test_a_fresh_claim_and_a_fresh_upload_are_left_alone(
    upload: Upload, owner: User, broker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fresh_upload = upload(owner, small_csv()).json()["id"]
    claimed = upload(owner, small_csv()).json()["id"]
    Dataset.objects.filter(pk=claimed).update(
        state=Dataset.State.VALIDATING, validating_since=timezone.now()
    )
    broker.take("control")

    with django_capture_on_commit_callbacks(execute=True):
        assert datasets_requeue(stale_after=timedelta(minutes=10)) == []

    assert queued_validations(broker) == []
    states = dict(Dataset.objects.filter(pk__in=[fresh_upload, claimed]).values_list("pk", "state"))
    assert states == {fresh_upload: "uploaded", claimed: "validating"}


def test_an_upload_whose_message_was_lost_is_sent_again(upload: Upload, owner: User) -> None:
    dataset_id = upload(owner, small_csv()).json()["id"]
    Dataset.objects.filter(pk=dataset_id).update(created_at=timezone.now() - timedelta(hours=1))

    assert datasets_requeue(stale_after=timedelta(minutes=10)) == [dataset_id]


def test_an_admin_requeues_a_version_that_failed_unexpectedly(
    upload: Upload, owner: User, admin_user: User, client: Any
) -> None:
    dataset_id = upload(owner, small_csv()).json()["id"]
    Dataset.objects.filter(pk=dataset_id).update(
        state=Dataset.State.INVALID, state_reason="Validation failed unexpectedly (OSError)"
    )
    client.force_login(admin_user)

    response = client.post(
        "/admin/catalog/dataset/",
        {"action": "validate_again", "_selected_action": [str(dataset_id)]},
        follow=True,
    )

    assert "Queued validation of 1 of 1" in response.content.decode()
    validate_dataset(dataset_id)
    assert Dataset.objects.get(pk=dataset_id).state == Dataset.State.READY


def test_an_upload_to_object_storage_validates_from_there(
    upload: Upload, owner: User, settings: Any, storage_root: Path
) -> None:
    base = f"memory://trainyard-test-{uuid.uuid4().hex[:8]}"
    settings.TRAINYARD_STORAGE_URL = base
    try:
        dataset_id = upload(owner, small_csv(), "plants.csv").json()["id"]
        dataset = Dataset.objects.get(pk=dataset_id)
        assert dataset.uri.startswith("memory://")

        validate_dataset(dataset_id)

        assert Dataset.objects.get(pk=dataset_id).state == Dataset.State.READY
        assert not [p for p in storage_root.rglob("*") if p.is_file()]
    finally:
        fsspec.filesystem("memory").rm(base.removeprefix("memory://"), recursive=True)
