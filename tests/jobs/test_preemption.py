"""Preemption through the real scheduler pass and PostgreSQL: who is stopped, with which
message, and how the victim goes back to the queue (docs/scheduling.md, Preemption)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from portal.jobs.models import Attempt, Job
from portal.jobs.preemption import Preempter
from portal.jobs.scheduling import schedule_pass
from portal.jobs.services import attempt_exited, attempt_started
from portal.jobs.signals import job_flagged
from tests.jobs.helpers import cpu_request, exited, node, placements, started, submit
from workers.messages import CANCEL_ATTEMPT_TASK, RUN_ATTEMPT_TASK, node_queue


def run(owner, iris, mlp, *, ran_s: float = 3600, **request: Any) -> Job:
    """A job placed and running, whose attempt started `ran_s` seconds ago."""
    job = submit(owner, iris, mlp, **request)
    assert schedule_pass() == 1
    attempt = job.attempts.get()
    for placement in placements(attempt):
        attempt_started(started(placement))
    Attempt.objects.filter(pk=attempt.pk).update(
        started_at=timezone.now() - timedelta(seconds=ran_s)
    )
    job.refresh_from_db()
    assert job.state == Job.State.RUNNING
    return job


@pytest.fixture
def flagged():
    heard: list[tuple[int, str, str]] = []

    def receiver(sender: Any, job: Job, flag: str, detail: str, **kwargs: Any) -> None:
        heard.append((job.pk, flag, detail))

    job_flagged.connect(receiver)
    yield heard
    job_flagged.disconnect(receiver)


def test_a_higher_priority_job_preempts_and_the_victim_is_requeued_without_a_restart(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks, flagged, settings, client
):
    settings.TRAINYARD_PREEMPT_GRACE_S = 45.0
    worker = node(cpu_slots=2)
    victim = run(owner, iris, mlp, **cpu_request(procs=2), scheduling={"preemptible": True})
    broker.take(node_queue(worker.name))
    urgent = submit(owner, iris, mlp, priority=5, **cpu_request(procs=2))

    with django_capture_on_commit_callbacks(execute=True):
        assert schedule_pass() == 0
    attempt = victim.attempts.get()
    assert attempt.preempted_by_id == urgent.pk and attempt.preempted_at is not None
    [stop] = broker.take(node_queue(worker.name))
    assert (stop.name, stop.args) == (
        CANCEL_ATTEMPT_TASK,
        [attempt.pk, {"kind": "preempt", "grace_s": 45.0, "detail": f"by job #{urgent.pk}"}],
    )
    urgent.refresh_from_db()
    victim.refresh_from_db()
    # What the pass did about it first, then why it still waits (its reservation).
    assert urgent.state_reason.startswith(
        f"Preempting job #{victim.pk} to make room: it checkpoints and stops within 45s. "
        "Waiting for capacity"
    )
    assert victim.state == Job.State.RUNNING
    assert victim.state_reason.startswith(f"Being preempted by job #{urgent.pk} (priority 5)")

    # While the victim stops, the waiting job preempts nobody else.
    with django_capture_on_commit_callbacks(execute=True):
        assert schedule_pass() == 0
    assert broker.take(node_queue(worker.name)) == []
    urgent.refresh_from_db()
    assert urgent.state_reason.startswith(
        f"Waiting for job #{victim.pk}, preempted for this job, to stop. Waiting for capacity"
    )
    # The victim's room comes back within the grace: the job reserves it, nobody backfills.
    assert "Reserved to start by" in urgent.state_reason

    # The node reports the stop: the victim is requeued, no restart used, one preemption.
    [share] = placements(attempt)
    with django_capture_on_commit_callbacks(execute=True):
        attempt_exited(
            exited(share, 1, cancelled=True, reason=f"preempted by job #{urgent.pk}: checkpointed")
        )
    attempt.refresh_from_db()
    victim.refresh_from_db()
    assert attempt.state == Attempt.State.PREEMPTED
    assert (victim.state, victim.restarts, victim.preemptions, victim.max_restarts) == (
        Job.State.QUEUED,
        0,
        1,
        0,
    )
    at = f"{attempt.preempted_at:%Y-%m-%d %H:%M:%S} UTC"
    assert victim.state_reason == (
        f"Attempt 1 was preempted by job #{urgent.pk} at {at}. Requeued (a preemption uses up "
        "no restart); it resumes from its latest checkpoint."
    )
    assert flagged == [(victim.pk, "preempted", victim.state_reason)]

    # The job page and the API say by which job and when, and how often.
    client.force_login(owner)
    page = client.get(f"/jobs/{victim.pk}/").content.decode()
    assert f"preempted by job #{urgent.pk} at {at}" in page
    assert 'data-testid="preemptions">1<' in page
    api = client.get(f"/api/v1/jobs/{victim.pk}/").json()
    assert (api["preemptible"], api["preemptions"], api["restarts"]) == (True, 1, 0)
    assert api["last_preemption"] == {
        "by_job": urgent.pk,
        "at": attempt.preempted_at.isoformat().replace("+00:00", "Z"),
        "attempt": 1,
    }
    assert api["attempts"][0]["state"] == "preempted"
    assert api["attempts"][0]["preempted_by"] == urgent.pk

    # The next pass places the waiting job in the room, not its lower-priority victim.
    with django_capture_on_commit_callbacks(execute=True):
        assert schedule_pass() == 1
    urgent.refresh_from_db()
    victim.refresh_from_db()
    assert (urgent.state, victim.state) == (Job.State.SCHEDULED, Job.State.QUEUED)
    assert [t.name for t in broker.take(node_queue(worker.name))] == [RUN_ATTEMPT_TASK]


def test_the_room_its_victims_free_is_kept_for_the_waiting_job(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    # Two 1-slot victims on two nodes for a 2-node gang: the first to stop must not hand
    # its node to a lower-priority job while the second still stops.
    first, second = node(cpu_slots=1), node(cpu_slots=1)
    one = run(owner, iris, mlp, scheduling={"preemptible": True})
    two = run(owner, iris, mlp, scheduling={"preemptible": True})
    gang = submit(owner, iris, mlp, priority=5, **cpu_request(nodes=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert schedule_pass() == 0
    assert {a.preempted_by_id for a in Attempt.objects.filter(job__in=[one, two])} == {gang.pk}
    [share] = placements(one.attempts.get())
    attempt_exited(exited(share, 1, cancelled=True))
    small = submit(owner, iris, mlp, priority=1)
    assert schedule_pass() == 0
    small.refresh_from_db()
    one.refresh_from_db()
    assert (small.state, one.state) == (Job.State.QUEUED, Job.State.QUEUED)
    [share] = placements(two.attempts.get())
    attempt_exited(exited(share, 1, cancelled=True))
    assert schedule_pass() == 1
    gang.refresh_from_db()
    assert gang.state == Job.State.SCHEDULED
    assert {first.pk, second.pk} == {p.node_id for p in placements(gang.attempts.get())}


@pytest.mark.parametrize(
    ("victim_request", "ran_s", "urgent_request"),
    [
        # Not opted in.
        ({}, 3600, {"priority": 5}),
        # Equal priority.
        ({"scheduling": {"preemptible": True}, "priority": 5}, 3600, {"priority": 5}),
        # Its attempt has not run the minimum time yet.
        ({"scheduling": {"preemptible": True}}, 10, {"priority": 5}),
        # The waiting job would still not fit: it needs 2 nodes and the cluster has 1.
        ({"scheduling": {"preemptible": True}}, 3600, {"priority": 5, **cpu_request(nodes=2)}),
    ],
)
def test_no_preemption(
    owner,
    iris,
    mlp,
    broker,
    django_capture_on_commit_callbacks,
    victim_request,
    ran_s,
    urgent_request,
):
    worker = node(cpu_slots=1)
    node(cpu_slots=1, is_draining=True)  # large enough for the gang, but not schedulable
    victim = run(owner, iris, mlp, ran_s=ran_s, **victim_request)
    broker.take(node_queue(worker.name))
    urgent = submit(owner, iris, mlp, **urgent_request)
    with django_capture_on_commit_callbacks(execute=True):
        assert schedule_pass() == 0
    assert victim.attempts.get().preempted_by_id is None
    assert broker.take(node_queue(worker.name)) == []
    urgent.refresh_from_db()
    assert "Preempting" not in urgent.state_reason


def test_a_preempted_job_that_is_cancelled_meanwhile_ends_cancelled(
    owner, iris, mlp, django_capture_on_commit_callbacks
):
    from portal.jobs.services import job_cancel

    node(cpu_slots=1)
    victim = run(owner, iris, mlp, scheduling={"preemptible": True})
    submit(owner, iris, mlp, priority=5)
    schedule_pass()
    job_cancel(user=owner, job=victim)
    [share] = placements(victim.attempts.get())
    attempt_exited(exited(share, 1, cancelled=True))
    victim.refresh_from_db()
    assert (victim.state, victim.preemptions) == (Job.State.CANCELLED, 0)


def test_the_pass_asks_only_about_jobs_an_attempt_could_be_preempted_for(
    owner, iris, mlp, settings
):
    settings.TRAINYARD_PREEMPT_MIN_RUN_S = 300.0
    node(cpu_slots=4)
    preemptible = {"scheduling": {"preemptible": True}}
    run(owner, iris, mlp, ran_s=3600, priority=1, **cpu_request(procs=2), **preemptible)
    # Lower still, but it has not run long enough to be preempted.
    young = run(owner, iris, mlp, ran_s=10, priority=0, **cpu_request(procs=2), **preemptible)
    waiting_id = 10**9  # no job: the answer depends on the running attempts only

    preempter = Preempter(now=timezone.now())
    assert not preempter.may_act_for(waiting_id, 1)
    assert preempter.may_act_for(waiting_id, 2)

    Attempt.objects.filter(job=young).update(started_at=timezone.now() - timedelta(hours=1))
    assert Preempter(now=timezone.now()).may_act_for(waiting_id, 1)
    assert not Preempter(now=timezone.now()).may_act_for(waiting_id, 0)
