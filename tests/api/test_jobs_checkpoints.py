"""GET /api/v1/jobs/<id>/checkpoints/ and the download: only files inside the job's checkpoint
directory, and another user's job answers 404."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.jobs.models import Attempt, Checkpoint, Job
from portal.jobs.scheduling import checkpoint_dir
from tests.api.conftest import TokenClient
from tests.factories import make_attempt, make_job


def checkpoint(
    attempt: Attempt, name: str, *, epoch: int, body: bytes | None = b"weights"
) -> Checkpoint:
    """A row as ingest writes it, and (unless `body` is None) its file where the trainer puts it."""
    if body is not None:
        path = checkpoint_dir(attempt.job) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return Checkpoint.objects.create(
        job=attempt.job,
        attempt=attempt,
        epoch=epoch,
        step=epoch * 4,
        name=name,
        sha256="ab" * 32,
        size_bytes=len(body or b""),
        val_loss=0.5 / epoch,
        val_accuracy=None,
        is_best=epoch == 2,
        created_at=timezone.now(),
    )


def test_it_lists_a_jobs_checkpoints_and_streams_one(
    client_for: TokenClient, owner: User, storage_root: Path
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    checkpoint(attempt, f"attempt-{attempt.pk}/epoch-1.pt", epoch=1, body=None)  # pruned
    kept = checkpoint(attempt, f"attempt-{attempt.pk}/epoch-2.pt", epoch=2, body=b"\x00best")
    client = client_for(owner)

    listed = client.get(f"/api/v1/jobs/{job.pk}/checkpoints/").json()
    assert [(c["epoch"], c["available"], c["is_best"]) for c in listed] == [
        (1, False, False),
        (2, True, True),
    ]
    assert listed[1]["attempt_number"] == 1
    assert listed[1]["val_accuracy"] is None
    assert listed[1]["download"] == f"/api/v1/jobs/{job.pk}/checkpoints/{kept.pk}/download/"

    response = client.get(listed[1]["download"])
    assert response.status_code == 200
    assert response.getvalue() == b"\x00best"
    assert response["Content-Disposition"] == (
        f'attachment; filename="job-{job.pk}-attempt-{attempt.pk}-epoch-2.pt"'
    )
    assert client.get(listed[0]["download"]).status_code == 404


def test_another_users_checkpoints_answer_404_on_every_route(
    client_for: TokenClient, owner: User, outsider: User, storage_root: Path
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    row = checkpoint(attempt, f"attempt-{attempt.pk}/epoch-1.pt", epoch=1)
    other = make_job(outsider, state=Job.State.RUNNING)
    client = client_for(outsider)
    assert client.get(f"/api/v1/jobs/{job.pk}/checkpoints/").status_code == 404
    assert client.get(f"/api/v1/jobs/{job.pk}/checkpoints/{row.pk}/download/").status_code == 404
    # Nor through a job of their own: a checkpoint belongs to its job.
    assert client.get(f"/api/v1/jobs/{other.pk}/checkpoints/{row.pk}/download/").status_code == 404


def test_a_name_that_resolves_outside_the_checkpoint_dir_is_never_served(
    client_for: TokenClient, owner: User, storage_root: Path
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    secret = storage_root / "secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("not yours")
    # Ingest refuses such names; a row that has one anyway (or a symlink planted on the
    # shared filesystem) still serves nothing.
    dotted = checkpoint(attempt, "../../secret.txt", epoch=1, body=None)
    linked = checkpoint(attempt, f"attempt-{attempt.pk}/epoch-2.pt", epoch=2, body=None)
    link = checkpoint_dir(job) / linked.name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    client = client_for(owner)
    for row in (dotted, linked):
        response = client.get(f"/api/v1/jobs/{job.pk}/checkpoints/{row.pk}/download/")
        assert response.status_code == 404


def test_the_job_page_lists_checkpoints_with_download_links(
    client: Client, owner: User, storage_root: Path
) -> None:
    job = make_job(owner, state=Job.State.RUNNING, parameter_count=67)
    attempt = make_attempt(job)
    checkpoint(attempt, f"attempt-{attempt.pk}/epoch-1.pt", epoch=1, body=None)
    kept = checkpoint(attempt, f"attempt-{attempt.pk}/epoch-2.pt", epoch=2)
    client.force_login(owner)
    page = client.get(reverse("jobs:detail", kwargs={"job_id": job.pk})).content.decode()
    download = f"/api/v1/jobs/{job.pk}/checkpoints/{kept.pk}/download/"
    assert f'<a href="{download}" download>Download</a>' in page
    assert "pruned" in page
    assert '<span class="chip">best</span>' in page
    assert '<dd data-testid="parameter-count">67</dd>' in page
