"""Attempt reports move a job through its life, fenced by the attempt id."""

from __future__ import annotations

from msgspec.structs import replace

from portal.jobs.models import Attempt, Job
from portal.jobs.scheduling import schedule_pass
from portal.jobs.services import attempt_exited, attempt_lost, attempt_started
from portal.jobs.stopping import stop_request
from portal.lib.ticks import scheduler_tick_send
from tests.jobs.helpers import (
    cpu_request,
    exited,
    layer_receive,
    listen,
    node,
    placements,
    started,
    submit,
)
from workers.messages import CANCEL_ATTEMPT_TASK, node_queue


def placed_job(owner, iris, mlp, *, nodes: int = 1, **request):
    for _ in range(nodes):
        node(cpu_slots=2)
    job = submit(owner, iris, mlp, **cpu_request(nodes=nodes), **request)
    assert schedule_pass() == 1
    job.refresh_from_db()
    return job, job.attempts.get()


def test_the_first_start_report_makes_the_job_running(owner, iris, mlp):
    job, attempt = placed_job(owner, iris, mlp)
    [placement] = placements(attempt)
    assert attempt_started(started(placement)) is True
    job.refresh_from_db()
    attempt.refresh_from_db()
    placement.refresh_from_db()
    assert job.state == Job.State.RUNNING and job.started_at is not None
    assert attempt.state == Attempt.State.RUNNING and attempt.started_at is not None
    assert placement.started_at is not None
    # A repeated report changes nothing.
    assert attempt_started(started(placement)) is False


def test_a_clean_exit_succeeds_the_job(owner, iris, mlp, django_capture_on_commit_callbacks):
    job, attempt = placed_job(owner, iris, mlp)
    [placement] = placements(attempt)
    attempt_started(started(placement))
    with django_capture_on_commit_callbacks() as callbacks:
        assert attempt_exited(exited(placement, 0)) is True
    job.refresh_from_db()
    attempt.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.finished_at is not None
    assert job.state_reason == "Attempt 1 succeeded."
    assert (attempt.state, attempt.exit_code) == (Attempt.State.SUCCEEDED, 0)
    # The freed capacity may start another job.
    assert scheduler_tick_send in callbacks


def test_an_exit_before_the_start_report_still_finishes_the_job(owner, iris, mlp):
    job, attempt = placed_job(owner, iris, mlp)
    [placement] = placements(attempt)
    attempt_exited(exited(placement, 0))
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED


def test_a_gang_succeeds_only_when_every_node_exited_0(owner, iris, mlp):
    job, attempt = placed_job(owner, iris, mlp, nodes=2)
    first, second = placements(attempt)
    for placement in (first, second):
        attempt_started(started(placement))
    attempt_exited(exited(first, 0))
    job.refresh_from_db()
    assert job.state == Job.State.RUNNING
    attempt_exited(exited(second, 0))
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED


def test_one_failing_node_fails_the_gang_and_stops_the_others(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    job, attempt = placed_job(owner, iris, mlp, nodes=2)
    first, second = placements(attempt)
    for placement in (first, second):
        attempt_started(started(placement))
    with django_capture_on_commit_callbacks(execute=True):
        attempt_exited(exited(second, 3, reason="worker raised ValueError."))
    job.refresh_from_db()
    attempt.refresh_from_db()
    assert job.state == Job.State.FAILED and job.finished_at is not None
    where = f"on {second.node.name} (rank 1)"
    assert job.state_reason == f"Attempt 1 failed: worker raised ValueError {where}."
    assert (attempt.state, attempt.exit_code) == (Attempt.State.FAILED, 3)
    [cancel] = broker.take(node_queue(first.node.name))
    assert (cancel.name, cancel.args) == (
        CANCEL_ATTEMPT_TASK,
        [attempt.pk, stop_request("cancel").to_json()],
    )
    assert broker.take(node_queue(second.node.name)) == []
    # The other node's late exit only records that its share stopped: the attempt has ended.
    assert attempt_exited(exited(first, -15, cancelled=True)) is True
    first.refresh_from_db()
    attempt.refresh_from_db()
    job.refresh_from_db()
    assert (first.exit_code, first.finished_at is not None) == (-15, True)
    assert (attempt.state, job.state) == (Attempt.State.FAILED, Job.State.FAILED)
    assert job.state_reason == f"Attempt 1 failed: worker raised ValueError {where}."
    assert attempt_exited(exited(first, -15, cancelled=True)) is False


def test_a_failure_with_restarts_left_requeues_the_job(owner, iris, mlp):
    job, attempt = placed_job(owner, iris, mlp, max_restarts=2)
    [placement] = placements(attempt)
    attempt_started(started(placement))
    attempt_exited(exited(placement, 1))
    job.refresh_from_db()
    assert (job.state, job.restarts) == (Job.State.QUEUED, 1)
    assert job.finished_at is None and job.started_at is not None
    assert job.state_reason.startswith(
        f"Attempt 1 failed: exit code 1 on {placement.node.name} (rank 0). "
        "Requeued (restart 1 of 2)"
    )
    assert schedule_pass() == 1
    second = job.attempts.get(number=2)
    attempt_exited(exited(placements(second)[0], 1))
    job.refresh_from_db()
    assert (job.state, job.restarts) == (Job.State.QUEUED, 2)
    schedule_pass()
    attempt_exited(exited(placements(job.attempts.get(number=3))[0], 1))
    job.refresh_from_db()
    assert (job.state, job.restarts) == (Job.State.FAILED, 2)
    assert "after 2 restarts" in job.state_reason


def test_a_failure_the_node_marks_not_retryable_fails_the_job_despite_restarts_left(
    owner, iris, mlp
):
    job, attempt = placed_job(owner, iris, mlp, max_restarts=3)
    [placement] = placements(attempt)
    attempt_started(started(placement))
    report = exited(placement, 1, reason="[rank 0] trainyard: error: label 'x' is not one of a, b")
    assert attempt_exited(replace(report, retryable=False)) is True
    job.refresh_from_db()
    attempt.refresh_from_db()
    assert (job.state, job.restarts) == (Job.State.FAILED, 0)
    assert attempt.state == Attempt.State.FAILED
    assert job.state_reason == (
        "Attempt 1 failed: [rank 0] trainyard: error: label 'x' is not one of a, b "
        f"on {placement.node.name} (rank 0). Not retried: another attempt would fail the "
        "same way."
    )
    assert schedule_pass() == 0


def test_a_failure_marked_retryable_is_requeued(owner, iris, mlp):
    job, attempt = placed_job(owner, iris, mlp, max_restarts=1)
    [placement] = placements(attempt)
    attempt_exited(exited(placement, -1, reason="the launcher died", retryable=True))
    job.refresh_from_db()
    assert (job.state, job.restarts) == (Job.State.QUEUED, 1)


def test_a_stale_attempts_exit_is_ignored(owner, iris, mlp):
    job, first = placed_job(owner, iris, mlp, max_restarts=1)
    [old_placement] = placements(first)
    attempt_lost(attempt_id=first.pk, reason="node vanished")
    schedule_pass()
    second = job.attempts.get(number=2)
    attempt_started(started(placements(second)[0]))

    # The first attempt's node comes back and reports its exit: fenced off. Only the old
    # share's own record notes that it stopped.
    assert attempt_exited(exited(old_placement, 0)) is True
    assert attempt_started(started(old_placement)) is False
    job.refresh_from_db()
    first.refresh_from_db()
    old_placement.refresh_from_db()
    assert job.state == Job.State.RUNNING
    assert (first.state, first.exit_code) == (Attempt.State.LOST, None)
    assert old_placement.finished_at is not None
    assert attempt_exited(exited(old_placement, 0)) is False


def test_reports_naming_unknown_or_foreign_attempts_are_ignored(owner, iris, mlp):
    job, attempt = placed_job(owner, iris, mlp)
    [placement] = placements(attempt)
    report = exited(placement, 0)
    assert attempt_exited(replace(report, attempt=attempt.pk + 1000)) is False
    assert attempt_exited(replace(report, job=job.pk + 1000)) is False
    assert attempt_exited(replace(report, node_rank=5)) is False
    assert attempt_exited(replace(report, node="someone-else")) is False
    assert attempt_lost(attempt_id=attempt.pk + 1000, reason="x") is False
    job.refresh_from_db()
    assert job.state == Job.State.SCHEDULED


def test_a_repeated_exit_report_changes_nothing(owner, iris, mlp):
    _job, attempt = placed_job(owner, iris, mlp, nodes=2)
    first, _second = placements(attempt)
    assert attempt_exited(exited(first, 0)) is True
    assert attempt_exited(exited(first, 0)) is False


def test_a_lost_attempt_fails_the_job_without_restarts(owner, iris, mlp):
    job, attempt = placed_job(owner, iris, mlp)
    assert attempt_lost(attempt_id=attempt.pk, reason="node n1 stopped sending heartbeats")
    job.refresh_from_db()
    attempt.refresh_from_db()
    assert attempt.state == Attempt.State.LOST
    assert job.state == Job.State.FAILED
    assert job.state_reason == "Attempt 1 was lost: node n1 stopped sending heartbeats."
    assert attempt_lost(attempt_id=attempt.pk, reason="again") is False


def test_state_changes_reach_the_jobs_groups(
    owner, iris, mlp, channel_layer, django_capture_on_commit_callbacks
):
    job, attempt = placed_job(owner, iris, mlp)
    channel = listen(channel_layer, f"job-{job.pk}", f"jobs-user-{owner.pk}", "jobs-all")
    with django_capture_on_commit_callbacks(execute=True):
        attempt_started(started(placements(attempt)[0]))
    event = {
        "type": "job.state",
        "job": job.pk,
        "name": job.name,
        "state": "running",
        "reason": "Running attempt 1.",
        "attempt": attempt.pk,
        "team": None,
    }
    # The page gets the event; each job list's group gets it in a batch of its group's.
    assert layer_receive(channel_layer, channel, 3) == [
        event,
        {"type": "job.states", "states": [event]},
        {"type": "job.states", "states": [event]},
    ]
