"""Reconciling a node's attempts with its heartbeat, both ways (portal.jobs.reconciliation)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from portal.cluster.services import node_heartbeat
from portal.jobs.models import Attempt, Job
from portal.jobs.reconciliation import attempts_reconcile_with_heartbeat
from portal.jobs.scheduling import schedule_pass
from portal.jobs.services import attempt_exited, attempt_lost
from portal.jobs.stopping import stop_request
from tests.factories import make_heartbeat
from tests.jobs.helpers import cpu_request, exited, node, placements, submit
from workers.messages import CANCEL_ATTEMPT_TASK, HealthEntry, node_queue


def record(entry: HealthEntry) -> None:
    """What ingest does with a heartbeat: record the node, then reconcile, in one transaction."""
    with transaction.atomic():
        worker = node_heartbeat(entry=entry)
        attempts_reconcile_with_heartbeat(node=worker, entry=entry)


def test_a_node_running_an_attempt_that_ended_is_told_to_stop_it(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    worker = node(cpu_slots=2)
    job = submit(owner, iris, mlp)
    schedule_pass()
    attempt = job.attempts.get()
    attempt_exited(exited(placements(attempt)[0], 0))
    broker.take(node_queue(worker.name))
    with django_capture_on_commit_callbacks(execute=True):
        record(make_heartbeat(worker.name, cpu_slots=2, running_attempts=[attempt.pk]))
    [task] = broker.take(node_queue(worker.name))
    assert (task.name, task.args) == (
        CANCEL_ATTEMPT_TASK,
        [attempt.pk, stop_request("cancel").to_json()],
    )


def test_a_node_running_its_current_attempt_is_left_alone(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    worker = node(cpu_slots=2)
    job = submit(owner, iris, mlp)
    schedule_pass()
    attempt = job.attempts.get()
    broker.take(node_queue(worker.name))
    with django_capture_on_commit_callbacks(execute=True):
        record(make_heartbeat(worker.name, cpu_slots=2, running_attempts=[attempt.pk]))
    assert broker.take(node_queue(worker.name)) == []


def placed_long_ago(owner, iris, mlp, seconds: float = 60.0, **request: Any) -> tuple[Job, Attempt]:
    """A job placed `seconds` ago (well past the start grace) on a fresh one-slot node."""
    node(cpu_slots=1)
    job = submit(owner, iris, mlp, **request)
    assert schedule_pass() == 1
    attempt = job.attempts.get()
    Attempt.objects.filter(pk=attempt.pk).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )
    return job, attempt


def test_an_attempt_its_node_neither_runs_nor_claims_is_lost_after_the_grace(
    owner, iris, mlp, settings
):
    settings.TRAINYARD_ATTEMPT_START_GRACE_S = 30.0
    job, attempt = placed_long_ago(owner, iris, mlp, max_restarts=1)
    worker = placements(attempt)[0].node
    record(make_heartbeat(worker.name, cpu_slots=1, claimed_attempts=[]))
    attempt.refresh_from_db()
    job.refresh_from_db()
    assert attempt.state == Attempt.State.LOST
    assert attempt.reason == (
        f"node {worker.name} does not have it (the start message was lost, or it ended "
        "without a report)"
    )
    assert (job.state, job.restarts) == (Job.State.QUEUED, 1)
    # The requeued job runs again on the node whose capacity the lost attempt held.
    assert schedule_pass() == 1


def test_an_attempt_the_node_has_claimed_or_runs_is_not_lost(owner, iris, mlp):
    _job, claimed = placed_long_ago(owner, iris, mlp)
    _job, running = placed_long_ago(owner, iris, mlp)
    for attempt, fields in (
        (claimed, {"claimed_attempts": [claimed.pk]}),
        (running, {"claimed_attempts": [], "running_attempts": [running.pk]}),
    ):
        worker = placements(attempt)[0].node
        record(make_heartbeat(worker.name, cpu_slots=1, **fields))
        attempt.refresh_from_db()
        assert attempt.state == Attempt.State.STARTING


def test_an_attempt_placed_within_the_grace_is_not_lost(owner, iris, mlp, settings):
    settings.TRAINYARD_ATTEMPT_START_GRACE_S = 30.0
    _job, attempt = placed_long_ago(owner, iris, mlp, seconds=20)
    worker = placements(attempt)[0].node
    record(make_heartbeat(worker.name, cpu_slots=1, claimed_attempts=[]))
    attempt.refresh_from_db()
    assert attempt.state == Attempt.State.STARTING


def test_a_heartbeat_taken_before_the_attempt_was_due_loses_nothing(owner, iris, mlp, settings):
    # Ingest ran behind: the heartbeat was taken before the node could have had the attempt.
    settings.TRAINYARD_ATTEMPT_START_GRACE_S = 30.0
    _job, attempt = placed_long_ago(owner, iris, mlp, seconds=60)
    worker = placements(attempt)[0].node
    taken = time.time() - 45
    record(make_heartbeat(worker.name, cpu_slots=1, claimed_attempts=[], ts=taken))
    attempt.refresh_from_db()
    assert attempt.state == Attempt.State.STARTING


def test_a_claimed_attempt_that_ended_is_cancelled_on_its_node(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    _job, attempt = placed_long_ago(owner, iris, mlp)
    worker = placements(attempt)[0].node
    attempt_lost(attempt_id=attempt.pk, reason="test")
    broker.take(node_queue(worker.name))
    with django_capture_on_commit_callbacks(execute=True):
        record(make_heartbeat(worker.name, cpu_slots=1, claimed_attempts=[attempt.pk]))
    [task] = broker.take(node_queue(worker.name))
    assert (task.name, task.args) == (
        CANCEL_ATTEMPT_TASK,
        [attempt.pk, stop_request("cancel").to_json()],
    )


def test_a_share_of_an_ended_attempt_the_node_no_longer_has_frees_its_capacity(owner, iris, mlp):
    first, second = node(cpu_slots=1), node(cpu_slots=1)
    gang = submit(owner, iris, mlp, **cpu_request(nodes=2))
    assert schedule_pass() == 1
    attempt = gang.attempts.get()
    Attempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    rank0, rank1 = placements(attempt)
    attempt_exited(exited(rank1, 1))
    follower = submit(owner, iris, mlp, **cpu_request(nodes=2))
    # Rank 0's exit report never comes; while its node still claims the attempt, it is held.
    record(make_heartbeat(rank0.node.name, cpu_slots=1, claimed_attempts=[attempt.pk]))
    assert schedule_pass() == 0
    # Then the node no longer has it: its share is over, and the follower can use both nodes.
    record(make_heartbeat(rank0.node.name, cpu_slots=1, claimed_attempts=[]))
    rank0.refresh_from_db()
    assert rank0.finished_at is not None and rank0.exit_code is None
    assert schedule_pass() == 1
    assert {p.node for p in placements(follower.attempts.get())} == {first, second}
