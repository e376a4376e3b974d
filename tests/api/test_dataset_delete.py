"""DELETE /api/v1/datasets/<id>/: a version no job uses goes with its file; one a job trained
on is refused with 409 naming the job; only its owner or an admin may delete it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth.models import User

from portal.catalog.models import Dataset
from portal.jobs.models import Job
from tests.api.conftest import TokenClient, Upload
from tests.factories import make_job, small_csv
from workers.storage import local_path_for


def test_deleting_removes_the_row_and_the_file(
    upload: Upload,
    client_for: TokenClient,
    owner: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    dataset_id = upload(owner, small_csv()).json()["id"]
    path = local_path_for(Dataset.objects.get(pk=dataset_id).uri)
    assert path.is_file()

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).delete(f"/api/v1/datasets/{dataset_id}/")

    assert response.status_code == 204
    assert not Dataset.objects.filter(pk=dataset_id).exists()
    assert not path.exists()


def test_a_version_a_job_uses_cannot_be_deleted(
    upload: Upload, client_for: TokenClient, owner: User, iris: Dataset
) -> None:
    dataset_id = upload(owner, small_csv(), name="plants").json()["id"]
    job = make_job(owner, name="uses-plants")
    Job.objects.filter(pk=job.pk).update(dataset_id=dataset_id)
    path = local_path_for(Dataset.objects.get(pk=dataset_id).uri)

    response = client_for(owner).delete(f"/api/v1/datasets/{dataset_id}/")

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert f"uses-plants (#{job.pk})" in detail and "plants v1" in detail
    assert Dataset.objects.filter(pk=dataset_id).exists()
    assert path.is_file()


def test_a_teammate_sees_it_but_may_not_delete_it(
    upload: Upload, client_for: TokenClient, owner: User, teammate: User
) -> None:
    dataset_id = upload(owner, small_csv()).json()["id"]
    assert client_for(teammate).get(f"/api/v1/datasets/{dataset_id}/").status_code == 200

    response = client_for(teammate).delete(f"/api/v1/datasets/{dataset_id}/")

    assert response.status_code == 403
    assert "owner or an admin" in response.json()["detail"]
    assert Dataset.objects.filter(pk=dataset_id).exists()


def test_an_admin_may_delete_anyones(
    upload: Upload, client_for: TokenClient, owner: User, admin_user: User, storage_root: Path
) -> None:
    dataset_id = upload(owner, small_csv()).json()["id"]
    assert client_for(admin_user).delete(f"/api/v1/datasets/{dataset_id}/").status_code == 204
    assert not Dataset.objects.filter(pk=dataset_id).exists()
