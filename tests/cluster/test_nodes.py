"""Heartbeats, registration, draining, usage, and reaping nodes that fell silent."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from portal.cluster.models import Node
from portal.cluster.selectors import nodes_with_usage
from portal.cluster.services import node_heartbeat, node_register, node_set_draining
from portal.jobs.models import Attempt, Job
from portal.jobs.scheduling import schedule_pass
from portal.jobs.services import attempt_exited
from portal.jobs.stopping import stop_request
from portal.jobs.tasks import reap_nodes
from portal.lib.ticks import scheduler_tick_send
from tests.factories import make_heartbeat
from tests.jobs.helpers import cpu_request, exited, node, placements, submit
from workers.messages import CANCEL_ATTEMPT_TASK, node_queue


def test_a_first_heartbeat_registers_the_node_and_asks_for_a_pass(
    db, django_capture_on_commit_callbacks
):
    name = f"ctl-{uuid.uuid4().hex[:10]}"
    with django_capture_on_commit_callbacks() as callbacks:
        created = node_heartbeat(entry=make_heartbeat(name, cpu_slots=6, gpu_count=1))
    worker = Node.objects.get(name=name)
    assert worker == created
    assert (worker.state, worker.cpu_slots, worker.gpu_count) == (Node.State.ONLINE, 6, 1)
    assert (worker.hostname, worker.address) == ("box", "10.1.2.3")
    assert worker.health["cpu_percent"] == 10.0
    assert worker.last_heartbeat_at is not None
    assert scheduler_tick_send in callbacks


def test_a_steady_heartbeat_does_not_ask_for_a_pass(db, django_capture_on_commit_callbacks):
    worker = node(cpu_slots=4)
    with django_capture_on_commit_callbacks() as callbacks:
        node_heartbeat(entry=make_heartbeat(worker.name, cpu_slots=4))
    assert scheduler_tick_send not in callbacks
    # ... but a node that changed size does.
    with django_capture_on_commit_callbacks() as callbacks:
        node_heartbeat(entry=make_heartbeat(worker.name, cpu_slots=8))
    assert scheduler_tick_send in callbacks


def test_an_offline_node_comes_back_online_with_a_heartbeat(db, django_capture_on_commit_callbacks):
    worker = node(state=Node.State.OFFLINE)
    with django_capture_on_commit_callbacks() as callbacks:
        node_heartbeat(entry=make_heartbeat(worker.name))
    worker.refresh_from_db()
    assert worker.state == Node.State.ONLINE
    assert scheduler_tick_send in callbacks


def test_register_creates_an_online_node_before_its_first_make_heartbeat(db):
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
        assert reap_nodes() == 1
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
    assert (task.name, task.args) == (
        CANCEL_ATTEMPT_TASK,
        [attempt.pk, stop_request("cancel").to_json()],
    )
    # Reaping again finds nothing new.
    assert reap_nodes() == 0


def test_the_reaper_loses_attempts_left_on_an_already_offline_node(
    owner, iris, mlp, ingest_caught_up
):
    worker = node(cpu_slots=1)
    job = submit(owner, iris, mlp)
    schedule_pass()
    # As if a previous reaper run died between taking the node offline and losing its attempts.
    Node.objects.filter(pk=worker.pk).update(state=Node.State.OFFLINE)
    assert reap_nodes() == 0
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
