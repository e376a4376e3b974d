"""`checkpoint.saved` events become Checkpoint rows, once, and only for the current attempt."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from portal.jobs.models import Attempt, Checkpoint, Job
from tests.factories import make_attempt, make_job, make_node
from tests.ingest.conftest import Streams
from tests.ingest.test_events_and_health import exited


def saved(attempt: Attempt, epoch: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": "checkpoint.saved",
        "job": attempt.job_id,
        "attempt": attempt.pk,
        "epoch": epoch,
        "step": epoch * 4,
        "name": f"attempt-{attempt.pk}/epoch-{epoch}.pt",
        "sha256": f"{epoch:064x}",
        "size_bytes": 1000 + epoch,
        "val_loss": 1.0 / epoch,
        "val_accuracy": 0.5,
        "is_best": True,
        "ts": 1_750_000_000.0 + epoch,
        **fields,
    }


def test_a_saved_checkpoint_is_stored_once_even_when_delivered_twice(
    streams: Streams, transactional_db: None, owner: User
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job, nodes=[make_node("ck-a")])
    ingestor = streams.ingestor()
    streams.add("events", saved(attempt, 1))
    streams.add("events", saved(attempt, 1))
    streams.add("events", saved(attempt, 2, is_best=False, val_accuracy=None))
    # The exit after the last checkpoint, in the same batch: both are applied.
    streams.add("events", exited(attempt, "ck-a"))
    streams.drain(ingestor)
    rows = list(Checkpoint.objects.filter(job=job).order_by("epoch"))
    assert [(r.epoch, r.step, r.is_best, r.val_accuracy) for r in rows] == [
        (1, 4, True, 0.5),
        (2, 8, False, None),
    ]
    assert rows[0].name == f"attempt-{attempt.pk}/epoch-1.pt"
    assert rows[0].size_bytes == 1001 and rows[0].sha256 == f"{1:064x}"
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED


def test_checkpoints_of_a_lost_or_superseded_attempt_or_outside_its_directory_are_dropped(
    streams: Streams, transactional_db: None, owner: User
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    old = make_attempt(job, nodes=[make_node("ck-b")], state=Attempt.State.LOST)
    new = make_attempt(job, nodes=[make_node("ck-c")])
    other_job = make_job(owner, state=Job.State.RUNNING)
    ingestor = streams.ingestor()
    streams.add("events", saved(old, 1))
    streams.add("events", saved(new, 1, name=f"attempt-{old.pk}/epoch-1.pt"))
    streams.add("events", saved(new, 2, name=f"attempt-{new.pk}/../attempt-{old.pk}/x.pt"))
    streams.add("events", saved(new, 3, job=other_job.pk))
    streams.add("events", saved(new, 4))
    streams.drain(ingestor)
    assert list(Checkpoint.objects.values_list("attempt_id", "epoch")) == [(new.pk, 4)]
