"""The scheduler's order, fair share, backfill with a reservation, maximum run time and the
why-pending record, through PostgreSQL and `schedule_pass` (the pure rules: test_planning.py)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from portal.jobs.fair_share import decayed_usage
from portal.jobs.models import Attempt, Job, Placement
from portal.jobs.quotas import QuotaVerdict, Unlimited
from portal.jobs.run_time import attempts_stop_past_run_time
from portal.jobs.scheduling import schedule_pass
from portal.jobs.services import attempt_exited, attempt_started
from tests.factories import make_user
from tests.jobs.helpers import cpu_request, exited, node, placements, started, submit
from workers.messages import CANCEL_ATTEMPT_TASK, node_queue


def minutes(count: int) -> dict[str, dict[str, int]]:
    return {"scheduling": {"max_run_time_minutes": count}}


def run(job: Job, *, ago: timedelta) -> Attempt:
    """Place `job` and report its ranks started, then date its start `ago` back."""
    attempt = job.attempts.order_by("-number").first()
    assert attempt is not None
    for placement in placements(attempt):
        attempt_started(started(placement))
    began = timezone.now() - ago
    Attempt.objects.filter(pk=attempt.pk).update(created_at=began, started_at=began)
    Placement.objects.filter(attempt=attempt).update(started_at=began)
    return attempt


def state(job: Job) -> str:
    job.refresh_from_db()
    return job.state


def why(job: Job) -> dict[str, Any]:
    assert job.why_pending is not None, job.state_reason
    return dict(job.why_pending)


def finish(attempt: Attempt, *, cancelled: bool = False) -> None:
    for placement in placements(attempt):
        attempt_exited(exited(placement, 0 if not cancelled else -15, cancelled=cancelled))


@pytest.mark.parametrize(
    ("history", "submitted", "first"),
    [
        # (owner's past use in slot-hours ending 1 h ago, priority) per job, in submit order.
        pytest.param([(0, 0), (0, 5)], ["a", "b"], "b", id="priority"),
        pytest.param([(4, 0), (0, 0)], ["a", "b"], "b", id="fair-share"),
        pytest.param([(0, 0), (0, 0)], ["a", "b"], "a", id="submission-time"),
        pytest.param([(4, 1), (0, 0)], ["a", "b"], "a", id="priority-over-fair-share"),
    ],
)
def test_one_free_slot_goes_by_priority_then_fair_share_then_age(
    owner, iris, mlp, history, submitted, first
):
    users = {"a": make_user(), "b": make_user()}
    worker = node(cpu_slots=1)
    jobs = {}
    for name, (used_hours, priority) in zip(submitted, history, strict=True):
        if used_hours:
            past = submit(users[name], iris, mlp)
            assert schedule_pass() == 1
            attempt = run(past, ago=timedelta(hours=1 + used_hours))
            finish(attempt)
            Placement.objects.filter(attempt=attempt).update(
                finished_at=timezone.now() - timedelta(hours=1)
            )
        jobs[name] = submit(users[name], iris, mlp, priority=priority)
    assert schedule_pass() == 1
    assert state(jobs[first]) == Job.State.SCHEDULED
    assert worker.placements.filter(finished_at__isnull=True).count() == 1


def test_usage_decays_with_the_half_life(owner, iris, mlp, settings):
    settings.TRAINYARD_FAIR_SHARE_HALF_LIFE_H = 2.0
    node(cpu_slots=4)
    job = submit(owner, iris, mlp, **cpu_request(procs=4))
    assert schedule_pass() == 1
    attempt = run(job, ago=timedelta(hours=3))
    Placement.objects.filter(attempt=attempt).update(
        finished_at=timezone.now() - timedelta(hours=2)
    )
    gpu_hours, slot_hours = decayed_usage(timezone.now())[owner.pk]
    # 4 slots for the hour from 3 h to 2 h ago: 4 * h/ln2 * (2^-(2/h) - 2^-(3/h)), h = 2.
    expected = 4 * 2 / math.log(2) * (2**-1 - 2**-1.5)
    assert gpu_hours == 0.0
    assert slot_hours == pytest.approx(expected, rel=1e-3)


def test_a_big_gang_starts_at_its_reservation_although_small_jobs_keep_arriving(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    """Two 4-slot nodes, one taken by two jobs that end in 10 minutes (their maximum run
    time). A gang of both whole nodes reserves them for then; small jobs keep arriving: the
    short ones backfill, the long ones wait, and the gang starts when the blockers end."""
    first, second = node(cpu_slots=4), node(cpu_slots=4)
    blockers = [submit(owner, iris, mlp, **cpu_request(procs=2), **minutes(60)) for _ in "ab"]
    assert schedule_pass() == 2
    blocking = [run(job, ago=timedelta(minutes=50)) for job in blockers]
    gang = submit(owner, iris, mlp, **cpu_request(nodes=2, procs=4))
    arrivals = []
    for _ in range(3):
        short = submit(owner, iris, mlp, **minutes(5))
        long = submit(owner, iris, mlp, **minutes(30))
        arrivals.append((short, long))
        schedule_pass()
        assert state(gang) == Job.State.QUEUED
        assert (state(short), state(long)) == (Job.State.SCHEDULED, Job.State.QUEUED)
    gang.refresh_from_db()
    reservation = why(gang)["reservation"]
    assert sorted(reservation["nodes"]) == sorted([first.name, second.name])
    assert why(gang)["estimated_start"] == reservation["start"]
    assert "Reserved to start by" in gang.state_reason

    # Ten minutes on: the blockers and the short jobs are past their maximum run time.
    for short, _ in arrivals:
        run(short, ago=timedelta(minutes=6))
    for attempt in blocking:
        Attempt.objects.filter(pk=attempt.pk).update(
            started_at=timezone.now() - timedelta(minutes=61)
        )
    for name in (first.name, second.name):
        broker.take(node_queue(name))
    with django_capture_on_commit_callbacks(execute=True):
        assert attempts_stop_past_run_time() == 5
    for name in (first.name, second.name):
        assert CANCEL_ATTEMPT_TASK in [task.name for task in broker.take(node_queue(name))]
    for job in blockers + [short for short, _ in arrivals]:
        finish(job.attempts.get(), cancelled=True)
        job.refresh_from_db()
        assert job.state == Job.State.FAILED
        assert "ran past its maximum run time" in job.state_reason
    # More small jobs arrive just before the pass: the gang, ahead of them all, starts.
    late = submit(owner, iris, mlp, **minutes(5))
    assert schedule_pass() == 1
    assert state(gang) == Job.State.SCHEDULED
    assert state(late) == Job.State.QUEUED
    assert all(state(long) == Job.State.QUEUED for _, long in arrivals)


def test_a_waiting_job_stores_why_and_a_pass_that_changes_nothing_writes_nothing(
    owner, iris, mlp, django_assert_max_num_queries
):
    busy = node(cpu_slots=2, pool="train")
    node(cpu_slots=8, pool="other")
    node(cpu_slots=2, pool="train", is_draining=True)
    running = submit(owner, iris, mlp, resources={"procs_per_node": 2, "pool": "train"})
    assert schedule_pass() == 1
    run(running, ago=timedelta(hours=1))
    head = submit(owner, iris, mlp, resources={"procs_per_node": 2, "pool": "train"})
    behind = submit(owner, iris, mlp, resources={"procs_per_node": 1, "pool": "train"})
    assert schedule_pass() == 0
    behind.refresh_from_db()
    found = why(behind)
    assert (found["queue"], found["position"], found["queue_length"], found["ahead"]) == (
        "train",
        2,
        2,
        [head.pk],
    )
    counts = {c["constraint"]: c["nodes"] for c in found["constraints"]}
    assert counts == {"pool": 1, "node_state": 1, "size": 0, "free": 1, "reservation": 0}
    assert found["quota"] is None
    head.refresh_from_db()
    began = running.attempts.get().started_at
    assert began is not None
    ends = began + timedelta(seconds=running.max_run_time_s)
    assert why(head)["reservation"]["nodes"] == [busy.name]
    assert why(head)["estimated_start"] == ends.isoformat()
    # Behind the reservation, and too long to end before it: after the head's run.
    after = ends + timedelta(seconds=head.max_run_time_s)
    assert why(behind)["estimated_start"] == after.isoformat()

    def stored() -> list[object]:
        jobs = Job.objects.filter(pk__in=[head.pk, behind.pk]).order_by("pk")
        return list(jobs.values_list("why_pending", "state_reason"))

    before = stored()
    with django_assert_max_num_queries(50) as queries:
        assert schedule_pass() == 0
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert stored() == before


class _HeldBack:
    """An `Admission` that holds back one user's jobs (the real ledger: portal.jobs.quotas)."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.verdict = QuotaVerdict("user", "ann", "gpus", allowed=8, used=6, asked=4)

    def blocked(self, job: Job) -> QuotaVerdict | None:
        return self.verdict if job.owner_id == self.user_id else None

    def limits(self, job: Job) -> list[QuotaVerdict]:
        return [self.verdict]

    def charge(self, job: Job) -> None:
        return None


def test_a_job_a_quota_holds_back_waits_and_names_the_limit_and_its_headroom(owner, iris, mlp):
    node(cpu_slots=4)
    other = make_user()
    held = submit(owner, iris, mlp)
    free = submit(other, iris, mlp)
    assert schedule_pass(admission=_HeldBack(owner.pk)) == 1
    assert state(free) == Job.State.SCHEDULED
    held.refresh_from_db()
    assert why(held)["quota"]["message"] == ("ann's quota: 6 of 8 GPUs in use, this job asks for 4")
    assert why(held)["quota"]["headroom"] == 2
    assert [limit["headroom"] for limit in why(held)["limits"]] == [2]
    assert why(held)["reservation"] is None and why(held)["estimated_start"] is None
    assert held.state_reason.startswith("Waiting for quota: ann's quota: 6 of 8 GPUs")
    assert schedule_pass(admission=Unlimited()) == 1
    assert state(held) == Job.State.SCHEDULED
    held.refresh_from_db()
    assert held.why_pending is None
