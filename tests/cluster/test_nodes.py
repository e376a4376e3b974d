"""Heartbeats, registration, draining, usage, and reaping nodes that fell silent."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from portal.cluster.models import Node
from portal.cluster.selectors import nodes_with_usage
from portal.cluster.services import node_heartbeat, node_register, node_set_draining, nodes_reap
from portal.jobs.models import Attempt, Job
from portal.jobs.scheduling import schedule_pass, scheduler_tick_send
from portal.jobs.services import attempt_exited, attempt_lost
from tests.jobs.helpers import cpu_request, exited, node, placements, submit
from workers.messages import CANCEL_ATTEMPT_TASK, HealthEntry, node_queue


def heartbeat(name: str, **fields: Any) -> HealthEntry:
    values: dict[str, Any] = {
        "node": name,
        "hostname": "box",
        "address": "10.1.2.3",
        "cpu_slots": 4,
        "gpu_count": 0,
        "cpu_percent": 10.0,
        "memory_used": 1,
        "memory_total": 2,
        "disk_used": 3,
        "disk_total": 4,
        "gpus": [],
        "running_attempts": [],
        "claimed_attempts": [],
        "ts": time.time(),
    }
    return HealthEntry(**(values | fields))


def fresh_callbacks() -> None:
    # The test's transaction never commits, so callbacks from its setup are still pending and
    # would hide a deduplicated scheduling tick: drop them.
    connection.run_on_commit = []


def test_a_first_heartbeat_registers_the_node_and_asks_for_a_pass(
    db, django_capture_on_commit_callbacks
):
    name = f"ctl-{uuid.uuid4().hex[:10]}"
    with django_capture_on_commit_callbacks() as callbacks:
        created = node_heartbeat(entry=heartbeat(name, cpu_slots=6, gpu_count=1))
    worker = Node.objects.get(name=name)
    assert worker == created
    assert (worker.state, worker.cpu_slots, worker.gpu_count) == (Node.State.ONLINE, 6, 1)
    assert (worker.hostname, worker.address) == ("box", "10.1.2.3")
    assert worker.health["cpu_percent"] == 10.0
    assert worker.last_heartbeat_at is not None
    assert scheduler_tick_send in callbacks


def test_a_steady_heartbeat_does_not_ask_for_a_pass(db, django_capture_on_commit_callbacks):
    worker = node(cpu_slots=4)
    fresh_callbacks()
    with django_capture_on_commit_callbacks() as callbacks:
        node_heartbeat(entry=heartbeat(worker.name, cpu_slots=4))
    assert scheduler_tick_send not in callbacks
    # ... but a node that changed size does.
    with django_capture_on_commit_callbacks() as callbacks:
        node_heartbeat(entry=heartbeat(worker.name, cpu_slots=8))
    assert scheduler_tick_send in callbacks


def test_an_offline_node_comes_back_online_with_a_heartbeat(db, django_capture_on_commit_callbacks):
    worker = node(state=Node.State.OFFLINE)
    fresh_callbacks()
    with django_capture_on_commit_callbacks() as callbacks:
        node_heartbeat(entry=heartbeat(worker.name))
    worker.refresh_from_db()
    assert worker.state == Node.State.ONLINE
    assert scheduler_tick_send in callbacks


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
        node_heartbeat(entry=heartbeat(worker.name, cpu_slots=2, running_attempts=[attempt.pk]))
    [task] = broker.take(node_queue(worker.name))
    assert (task.name, task.args) == (CANCEL_ATTEMPT_TASK, [attempt.pk])


def test_a_node_running_its_current_attempt_is_left_alone(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    worker = node(cpu_slots=2)
    job = submit(owner, iris, mlp)
    schedule_pass()
    attempt = job.attempts.get()
    broker.take(node_queue(worker.name))
    with django_capture_on_commit_callbacks(execute=True):
        node_heartbeat(entry=heartbeat(worker.name, cpu_slots=2, running_attempts=[attempt.pk]))
    assert broker.take(node_queue(worker.name)) == []


def test_register_creates_an_online_node_before_its_first_heartbeat(db):
    name = f"ctl-{uuid.uuid4().hex[:10]}"
    worker = node_register(name=name, address="127.0.0.1", cpu_slots=2, gpu_count=0)
    again = node_register(name=name, address="127.0.0.1", cpu_slots=3, gpu_count=0)
    assert worker.pk == again.pk
    again.refresh_from_db()
    assert (again.state, again.cpu_slots) == (Node.State.ONLINE, 3)
    assert again.is_schedulable


def test_draining_stops_new_placements_and_undraining_resumes_them(owner, iris, mlp):
    worker = node(cpu_slots=1)
    job = submit(owner, iris, mlp)
    worker = node_set_draining(node=worker, draining=True)
    assert worker.is_draining
    assert schedule_pass() == 0
    job.refresh_from_db()
    assert "is draining" in job.state_reason
    node_set_draining(node=worker, draining=False)
    assert schedule_pass() == 1


def test_nodes_with_usage_counts_only_active_attempts(owner, iris, mlp, django_assert_num_queries):
    busy, idle = node(cpu_slots=5), node(cpu_slots=4)
    done = submit(owner, iris, mlp, **cpu_request(procs=2))
    running = submit(owner, iris, mlp, **cpu_request(procs=3))
    Node.objects.filter(pk=idle.pk).update(is_draining=True)
    schedule_pass()
    attempt_exited(exited(placements(done.attempts.get())[0], 0))
    assert running.attempts.get().state == Attempt.State.STARTING
    with django_assert_num_queries(1):
        usage = {n.pk: (n.slots_in_use, n.gpus_in_use) for n in nodes_with_usage()}
    assert usage[busy.pk] == (3, 0)
    assert usage[idle.pk] == (0, 0)


def test_nodes_with_usage_holds_a_failed_gangs_share_until_its_node_reports(owner, iris, mlp):
    # The nodes page must agree with the scheduler: rank 1's node is still stopping.
    first, second = node(cpu_slots=2), node(cpu_slots=2)
    gang = submit(owner, iris, mlp, **cpu_request(nodes=2, procs=2))
    schedule_pass()
    shares = placements(gang.attempts.get())
    attempt_exited(exited(shares[0], 1))
    assert gang.attempts.get().state == Attempt.State.FAILED
    usage = {n.pk: n.slots_in_use for n in nodes_with_usage()}
    still_running = shares[1].node_id
    assert usage[still_running] == 2
    assert usage[({first.pk, second.pk} - {still_running}).pop()] == 0


def test_the_reaper_takes_silent_nodes_offline_and_loses_their_attempts(
    owner, iris, mlp, settings, broker, django_capture_on_commit_callbacks, ingest_caught_up
):
    settings.TRAINYARD_HEARTBEAT_S = 2.0
    settings.TRAINYARD_MISSED_HEARTBEATS = 3
    silent, alive = node(cpu_slots=1), node(cpu_slots=1)
    gang = submit(owner, iris, mlp, max_restarts=1, **cpu_request(nodes=2))
    schedule_pass()
    attempt = gang.attempts.get()
    broker.take(node_queue(silent.name))
    broker.take(node_queue(alive.name))
    now = timezone.now()
    Node.objects.filter(pk=silent.pk).update(last_heartbeat_at=now - timedelta(seconds=7))
    Node.objects.filter(pk=alive.pk).update(last_heartbeat_at=now - timedelta(seconds=5))

    with django_capture_on_commit_callbacks(execute=True):
        reaped = nodes_reap()
    assert [n.pk for n in reaped] == [silent.pk]
    silent.refresh_from_db()
    alive.refresh_from_db()
    assert (silent.state, alive.state) == (Node.State.OFFLINE, Node.State.ONLINE)
    attempt.refresh_from_db()
    gang.refresh_from_db()
    assert attempt.state == Attempt.State.LOST
    assert attempt.reason == f"node {silent.name} stopped sending heartbeats"
    assert (gang.state, gang.restarts) == (Job.State.QUEUED, 1)
    # The surviving half of the gang is told to stop.
    [task] = broker.take(node_queue(alive.name))
    assert (task.name, task.args) == (CANCEL_ATTEMPT_TASK, [attempt.pk])
    # Reaping again finds nothing new.
    assert nodes_reap() == []


def test_the_reaper_loses_attempts_left_on_an_already_offline_node(
    owner, iris, mlp, ingest_caught_up
):
    worker = node(cpu_slots=1)
    job = submit(owner, iris, mlp)
    schedule_pass()
    # As if a previous reaper run died between taking the node offline and losing its attempts.
    Node.objects.filter(pk=worker.pk).update(state=Node.State.OFFLINE)
    assert nodes_reap() == []
    job.refresh_from_db()
    assert job.state == Job.State.FAILED


# ---- reconciling what a node has with what the database placed on it ------------------------


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
    node_heartbeat(entry=heartbeat(worker.name, cpu_slots=1, claimed_attempts=[]))
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
        node_heartbeat(entry=heartbeat(worker.name, cpu_slots=1, **fields))
        attempt.refresh_from_db()
        assert attempt.state == Attempt.State.STARTING


def test_an_attempt_placed_within_the_grace_is_not_lost(owner, iris, mlp, settings):
    settings.TRAINYARD_ATTEMPT_START_GRACE_S = 30.0
    _job, attempt = placed_long_ago(owner, iris, mlp, seconds=20)
    worker = placements(attempt)[0].node
    node_heartbeat(entry=heartbeat(worker.name, cpu_slots=1, claimed_attempts=[]))
    attempt.refresh_from_db()
    assert attempt.state == Attempt.State.STARTING


def test_a_heartbeat_taken_before_the_attempt_was_due_loses_nothing(owner, iris, mlp, settings):
    # Ingest ran behind: the heartbeat was taken before the node could have had the attempt.
    settings.TRAINYARD_ATTEMPT_START_GRACE_S = 30.0
    _job, attempt = placed_long_ago(owner, iris, mlp, seconds=60)
    worker = placements(attempt)[0].node
    taken = time.time() - 45
    node_heartbeat(entry=heartbeat(worker.name, cpu_slots=1, claimed_attempts=[], ts=taken))
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
        node_heartbeat(entry=heartbeat(worker.name, cpu_slots=1, claimed_attempts=[attempt.pk]))
    [task] = broker.take(node_queue(worker.name))
    assert (task.name, task.args) == (CANCEL_ATTEMPT_TASK, [attempt.pk])


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
    node_heartbeat(entry=heartbeat(rank0.node.name, cpu_slots=1, claimed_attempts=[attempt.pk]))
    assert schedule_pass() == 0
    # Then the node no longer has it: its share is over, and the follower can use both nodes.
    node_heartbeat(entry=heartbeat(rank0.node.name, cpu_slots=1, claimed_attempts=[]))
    rank0.refresh_from_db()
    assert rank0.finished_at is not None and rank0.exit_code is None
    assert schedule_pass() == 1
    assert {p.node for p in placements(follower.attempts.get())} == {first, second}
