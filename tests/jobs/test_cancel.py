"""Cancelling a job from each state."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from portal.jobs.models import Attempt, Job
from portal.jobs.scheduling import schedule_pass
from portal.jobs.services import attempt_exited, attempt_lost, attempt_started, job_cancel
from portal.jobs.stopping import stop_request
from tests.jobs.helpers import cpu_request, exited, node, placements, started, submit
from workers.messages import CANCEL_ATTEMPT_TASK, node_queue


def test_a_queued_job_is_cancelled_at_once(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    worker = node(cpu_slots=1, is_draining=False)
    node(cpu_slots=1)
    job = submit(owner, iris, mlp, **cpu_request(nodes=2, procs=1))
    worker.is_draining = True  # keep it queued: the pass below finds a node draining
    type(worker).objects.filter(pk=worker.pk).update(is_draining=True)
    schedule_pass()
    with django_capture_on_commit_callbacks(execute=True):
        job = job_cancel(user=owner, job=job)
    assert job.state == Job.State.CANCELLED
    assert job.state_reason == "Cancelled by owner before it started."
    assert job.cancel_requested_at is not None and job.finished_at is not None
    assert not job.attempts.exists()
    assert broker.take(node_queue(worker.name)) == []
    # The scheduler never places a cancelled job.
    type(worker).objects.filter(pk=worker.pk).update(is_draining=False)
    assert schedule_pass() == 0


@pytest.mark.parametrize("running", [False, True])
def test_a_placed_job_moves_to_cancelling_and_its_nodes_are_told(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks, running
):
    first, second = node(cpu_slots=1), node(cpu_slots=1)
    job = submit(owner, iris, mlp, **cpu_request(nodes=2))
    schedule_pass()
    attempt = job.attempts.get()
    if running:
        attempt_started(started(placements(attempt)[0]))
    for worker in (first, second):
        broker.take(node_queue(worker.name))  # the run messages

    with django_capture_on_commit_callbacks(execute=True):
        job = job_cancel(user=owner, job=job)
    assert job.state == Job.State.CANCELLING
    assert job.cancel_requested_at is not None and job.finished_at is None
    for worker in (first, second):
        [task] = broker.take(node_queue(worker.name))
        assert (task.name, task.args) == (
            CANCEL_ATTEMPT_TASK,
            [attempt.pk, stop_request("cancel").to_json()],
        )

    # The nodes confirm: the first confirmation ends the attempt and the job.
    one, two = placements(attempt)
    attempt_exited(exited(one, -15, cancelled=True, reason="cancelled"))
    job.refresh_from_db()
    attempt.refresh_from_db()
    assert job.state == Job.State.CANCELLED and job.finished_at is not None
    assert attempt.state == Attempt.State.CANCELLED
    # The second confirmation only records that its node stopped (its capacity is free).
    assert attempt_exited(exited(two, -15, cancelled=True)) is True
    two.refresh_from_db()
    assert two.finished_at is not None
    job.refresh_from_db()
    assert (job.state, job.state_reason) == (Job.State.CANCELLED, "Cancelled.")
    assert attempt_exited(exited(two, -15, cancelled=True)) is False


def test_a_cancelling_job_whose_attempt_succeeds_meanwhile_ends_cancelled(owner, iris, mlp):
    node(cpu_slots=1)
    job = submit(owner, iris, mlp)
    schedule_pass()
    job_cancel(user=owner, job=job)
    attempt_exited(exited(placements(job.attempts.get())[0], 0))
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED


def test_a_cancelling_job_on_a_lost_node_ends_cancelled_not_requeued(owner, iris, mlp):
    node(cpu_slots=1)
    job = submit(owner, iris, mlp, max_restarts=3)
    schedule_pass()
    job_cancel(user=owner, job=job)
    attempt_lost(attempt_id=job.attempts.get().pk, reason="gone")
    job.refresh_from_db()
    assert (job.state, job.restarts) == (Job.State.CANCELLED, 0)


def test_cancelling_again_repeats_the_message_to_the_nodes(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    worker = node(cpu_slots=1)
    job = submit(owner, iris, mlp)
    schedule_pass()
    job_cancel(user=owner, job=job)
    with django_capture_on_commit_callbacks(execute=True):
        job = job_cancel(user=owner, job=job)
    assert job.state == Job.State.CANCELLING
    assert [t.name for t in broker.take(node_queue(worker.name))] == [CANCEL_ATTEMPT_TASK]


@pytest.mark.parametrize("state", [Job.State.SUCCEEDED, Job.State.FAILED, Job.State.CANCELLED])
def test_cancelling_a_finished_job_changes_nothing(owner, iris, mlp, state):
    node()
    job = submit(owner, iris, mlp)
    Job.objects.filter(pk=job.pk).update(state=state, state_reason="done")
    job = job_cancel(user=owner, job=job)
    assert (job.state, job.state_reason, job.cancel_requested_at) == (state, "done", None)


def test_a_teammate_may_cancel_a_team_job(owner, teammate, iris, mlp):
    node()
    job = submit(owner, iris, mlp)
    assert job_cancel(user=teammate, job=job).state == Job.State.CANCELLED


def test_an_outsider_cannot_cancel(owner, outsider, iris, mlp):
    node()
    job = submit(owner, iris, mlp)
    with pytest.raises(PermissionDenied):
        job_cancel(user=outsider, job=job)
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED
