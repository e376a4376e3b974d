"""Control-queue tasks of the catalog: validating an upload, and re-queueing lost validations."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from portal.catalog import services


@shared_task(name=services.VALIDATE_TASK)
def validate_dataset(dataset_id: int) -> None:
    services.dataset_validate(dataset_id=dataset_id)


@shared_task(name="portal.catalog.tasks.requeue_stale_datasets")
def requeue_stale_datasets() -> None:
    services.datasets_requeue(
        stale_after=timedelta(seconds=settings.TRAINYARD_DATASET_VALIDATION_STALE_S)
    )
