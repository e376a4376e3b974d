"""The scheduler: gang placement, capacity accounting, ordering, waiting reasons, one pass."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.utils import timezone

from portal.cluster.models import Node
from portal.jobs.events import JOBS_QUEUE_GROUP, job_group
from portal.jobs.models import Attempt, Job, Placement
from portal.jobs.scheduling import (
    MASTER_PORT_BASE,
    MASTER_PORT_RANGE,
    SCHEDULER_LOCK_KEY,
    checkpoint_dir,
    requeue_backoff_s,
    schedule_pass,
)
from portal.jobs.services import attempt_exited, attempt_lost
from tests.factories import make_attempt, make_job
from tests.jobs.helpers import (
    cpu_request,
    exited,
    layer_receive,
    listen,
    node,
    placements,
    submit,
)
from workers.messages import (
    CANCEL_ATTEMPT_TASK,
    RUN_ATTEMPT_EXPIRES_S,
    RUN_ATTEMPT_TASK,
    AttemptSpec,
    MlpModel,
    node_queue,
)


def run_pass(capture) -> int:
    with capture(execute=True):
        return schedule_pass()


def test_it_places_a_job_and_sends_each_node_its_spec(
    owner, iris, mlp, broker, storage_root: Path, django_capture_on_commit_callbacks
):
    worker = node(cpu_slots=4, address="10.0.0.7")
    job = submit(
        owner,
        iris,
        mlp,
        training={"epochs": 7, "checkpoint_every": 3, "keep_last": 4},
        hyperparameters={"hidden_sizes": [5]},
        **cpu_request(procs=3),
    )
    assert run_pass(django_capture_on_commit_callbacks) == 1

    job.refresh_from_db()
    assert job.state == Job.State.SCHEDULED
    attempt = job.attempts.get()
    assert attempt.number == 1 and attempt.state == Attempt.State.STARTING
    assert attempt.master_addr == "10.0.0.7"
    assert 29500 <= attempt.master_port < 31500
    [placement] = placements(attempt)
    assert (placement.node, placement.node_rank, placement.slots, placement.gpus) == (
        worker,
        0,
        3,
        0,
    )

    [task] = broker.take(node_queue(worker.name))
    assert task.name == RUN_ATTEMPT_TASK
    spec = AttemptSpec.from_json(task.args[0])
    assert (spec.job_id, spec.attempt_id, spec.node_name) == (job.pk, attempt.pk, worker.name)
    assert spec.dataset.uri == iris.uri and spec.dataset.sha256 == iris.sha256
    assert spec.dataset.classes == ("setosa", "versicolor", "virginica")
    # The version the job pinned, with its validated statistics and preprocessing.
    assert spec.dataset == iris.node_spec()
    assert spec.model == MlpModel(hidden_sizes=(5,))
    assert spec.training.epochs == 7
    assert (spec.training.checkpoint_every, spec.training.keep_last) == (3, 4)
    assert spec.training.best_metric == "val_loss"
    placement_spec = spec.placement
    assert (placement_spec.nnodes, placement_spec.node_rank, placement_spec.nproc_per_node) == (
        1,
        0,
        3,
    )
    assert placement_spec.device == "cpu"
    assert (placement_spec.master_addr, placement_spec.master_port) == (
        "10.0.0.7",
        attempt.master_port,
    )
    assert spec.checkpoint_dir == str(storage_root.resolve() / "checkpoints" / f"job-{job.uid}")


def test_a_two_node_job_is_placed_on_two_distinct_nodes(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    first, second = node(cpu_slots=2), node(cpu_slots=2)
    job = submit(owner, iris, mlp, **cpu_request(nodes=2, procs=2))
    assert run_pass(django_capture_on_commit_callbacks) == 1
    attempt = job.attempts.get()
    ranks = {p.node: p.node_rank for p in placements(attempt)}
    assert set(ranks) == {first, second} and sorted(ranks.values()) == [0, 1]
    for worker in (first, second):
        [task] = broker.take(node_queue(worker.name))
        spec = AttemptSpec.from_json(task.args[0])
        assert spec.placement.nnodes == 2
        assert spec.placement.node_rank == ranks[worker]
        # Every rank meets at the first node's rendezvous.
        rank0 = next(n for n, r in ranks.items() if r == 0)
        assert spec.placement.master_addr == rank0.address


def test_a_gang_is_never_half_placed(owner, iris, mlp, broker, django_capture_on_commit_callbacks):
    big, small = node(cpu_slots=4), node(cpu_slots=4)
    blocker = submit(owner, iris, mlp, **cpu_request(procs=3))
    schedule_pass()
    blocker_node = blocker.attempts.get().placements.get().node
    gang = submit(owner, iris, mlp, **cpu_request(nodes=2, procs=2))

    assert run_pass(django_capture_on_commit_callbacks) == 0
    gang.refresh_from_db()
    assert gang.state == Job.State.QUEUED
    assert not gang.attempts.exists()
    other = small if blocker_node == big else big
    assert broker.take(node_queue(other.name)) == []
    assert gang.state_reason.startswith(
        "Waiting for capacity: needs 2 nodes with 2 CPU slots each; 1 of them has "
        "2 free CPU slots now. Reserved to start by "
    )
    assert gang.state_reason.endswith(". Position 1 of 1 in the queue.")


def test_freed_capacity_is_used_by_the_next_pass(owner, iris, mlp):
    node(cpu_slots=4)
    first = submit(owner, iris, mlp, **cpu_request(procs=3))
    second = submit(owner, iris, mlp, **cpu_request(procs=2))
    assert schedule_pass() == 1
    second.refresh_from_db()
    assert second.state == Job.State.QUEUED
    # Placements of active attempts hold capacity, pass after pass.
    assert schedule_pass() == 0

    [placement] = placements(first.attempts.get())
    attempt_exited(exited(placement, 0))
    assert schedule_pass() == 1
    second.refresh_from_db()
    assert second.state == Job.State.SCHEDULED


def test_capacity_adds_up_several_jobs_on_one_node(owner, iris, mlp):
    worker = node(cpu_slots=5)
    jobs = [submit(owner, iris, mlp, **cpu_request(procs=2)) for _ in range(3)]
    assert schedule_pass() == 2
    states = sorted(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("state", flat=True))
    assert states == [Job.State.QUEUED, Job.State.SCHEDULED, Job.State.SCHEDULED]
    assert sum(Placement.objects.filter(node=worker).values_list("slots", flat=True)) == 4


def test_higher_priority_goes_first_then_the_oldest(owner, iris, mlp):
    node(cpu_slots=1)
    old = submit(owner, iris, mlp)
    urgent = submit(owner, iris, mlp, priority=10)
    newer = submit(owner, iris, mlp)
    assert schedule_pass() == 1
    urgent.refresh_from_db()
    old.refresh_from_db()
    newer.refresh_from_db()
    assert urgent.state == Job.State.SCHEDULED
    assert old.state_reason.endswith("Position 1 of 2 in the queue.")
    assert newer.state_reason.endswith("Position 2 of 2 in the queue.")


def test_a_job_that_does_not_fit_lets_a_smaller_one_start_that_ends_before_it_could(
    owner, iris, mlp
):
    node(cpu_slots=2)
    running = submit(owner, iris, mlp)  # the default maximum run time: a day
    schedule_pass()
    big = submit(owner, iris, mlp, priority=5, **cpu_request(procs=2))
    too_long = submit(owner, iris, mlp, scheduling={"max_run_time_minutes": 25 * 60})
    small = submit(owner, iris, mlp, scheduling={"max_run_time_minutes": 60})
    assert schedule_pass() == 1
    big.refresh_from_db()
    small.refresh_from_db()
    too_long.refresh_from_db()
    assert (big.state, small.state) == (Job.State.QUEUED, Job.State.SCHEDULED)
    # It would still hold the slot when the big job's reservation begins.
    assert too_long.state == Job.State.QUEUED
    assert running.pk != small.pk


def test_it_prefers_the_tightest_fit(owner, iris, mlp):
    roomy, snug = node(cpu_slots=8), node(cpu_slots=2)
    job = submit(owner, iris, mlp, **cpu_request(procs=2))
    schedule_pass()
    assert job.attempts.get().placements.get().node == snug
    assert roomy.placements.count() == 0


def test_a_gpu_job_holds_gpus_and_runs_on_cuda(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    worker = node(cpu_slots=2, gpu_count=4)
    job = submit(owner, iris, mlp, resources={"gpus_per_node": 3})
    cpu_job = submit(owner, iris, mlp, **cpu_request(procs=2))
    second_gpu_job = submit(owner, iris, mlp, resources={"gpus_per_node": 2})
    assert run_pass(django_capture_on_commit_callbacks) == 2
    [placement] = placements(job.attempts.get())
    assert (placement.gpus, placement.slots) == (3, 0)
    assert cpu_job.attempts.exists() and not second_gpu_job.attempts.exists()
    specs = [AttemptSpec.from_json(t.args[0]) for t in broker.take(node_queue(worker.name))]
    gpu_spec = next(s for s in specs if s.job_id == job.pk)
    assert (gpu_spec.placement.device, gpu_spec.placement.nproc_per_node) == ("cuda", 3)


def test_a_waiting_job_says_which_nodes_are_draining_or_offline(owner, iris, mlp):
    small = node(cpu_slots=1)
    draining = node(cpu_slots=4)
    job = submit(owner, iris, mlp, **cpu_request(procs=2))
    Node.objects.filter(pk=draining.pk).update(is_draining=True)
    offline = node(cpu_slots=8, state=Node.State.OFFLINE)
    assert schedule_pass() == 0
    job.refresh_from_db()
    assert job.state_reason.startswith(
        "Waiting for nodes: needs 1 node with 2 CPU slots; only 0 schedulable "
        "nodes are that large ("
    )
    assert f"{draining.name} is draining" in job.state_reason
    assert f"{offline.name} is offline" in job.state_reason
    assert job.state_reason.endswith(". Position 1 of 1 in the queue.")
    assert small.placements.count() == 0


def test_a_pass_tells_the_queued_pages_once_not_each_job(
    owner, channel_layer, django_capture_on_commit_callbacks
):
    jobs = [make_job(owner, procs_per_node=2) for _ in range(3)]
    channel = listen(channel_layer, JOBS_QUEUE_GROUP, *(job_group(job.pk) for job in jobs))

    assert run_pass(django_capture_on_commit_callbacks) == 0
    # Every job's reason was written; their pages read them on the one event.
    assert all(Job.objects.get(pk=job.pk).state_reason for job in jobs)
    # Nothing changed in the second pass: nothing written, nothing sent.
    assert run_pass(django_capture_on_commit_callbacks) == 0
    async_to_sync(channel_layer.group_send)(JOBS_QUEUE_GROUP, {"type": "test.marker"})
    assert layer_receive(channel_layer, channel, 2) == [
        {"type": "job.queue_moved"},
        {"type": "test.marker"},
    ]


def test_a_requeued_job_gets_the_next_attempt_and_the_same_checkpoints(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    worker = node(cpu_slots=2)
    job = submit(owner, iris, mlp, max_restarts=1)
    schedule_pass()
    first = job.attempts.get()
    with django_capture_on_commit_callbacks(execute=True):
        attempt_lost(attempt_id=first.pk, reason="test")
    assert run_pass(django_capture_on_commit_callbacks) == 1
    second = job.attempts.get(number=2)
    tasks = broker.take(node_queue(worker.name))
    runs = [AttemptSpec.from_json(t.args[0]) for t in tasks if t.name == RUN_ATTEMPT_TASK]
    assert [s.attempt_id for s in runs] == [second.pk]
    assert runs[0].checkpoint_dir.endswith(f"checkpoints/job-{job.uid}")
    # The lost attempt's node was told to stop it, in case it still runs.
    assert [t.args[0] for t in tasks if t.name == CANCEL_ATTEMPT_TASK] == [first.pk]


@pytest.mark.django_db(transaction=True)
def test_a_second_concurrent_pass_returns_0_while_one_holds_the_lock(owner, iris, mlp):
    node(cpu_slots=2)
    job = submit(owner, iris, mlp)
    results: list[int] = []

    def other_worker() -> None:
        try:
            results.append(schedule_pass())
        finally:
            connection.close()

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEDULER_LOCK_KEY])
        thread = threading.Thread(target=other_worker)
        thread.start()
        thread.join(timeout=30)
    assert results == [0]
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED
    # With the lock released, a pass places the job.
    thread = threading.Thread(target=other_worker)
    thread.start()
    thread.join(timeout=30)
    assert results == [0, 1]


def test_a_pass_reads_in_a_fixed_number_of_queries_however_long_the_queue(
    owner, iris, mlp, django_assert_max_num_queries
):
    node(cpu_slots=1)
    node(cpu_slots=1, is_draining=True)
    submit(owner, iris, mlp)
    schedule_pass()  # fills the node
    for _ in range(3):
        submit(owner, iris, mlp)
    with django_assert_max_num_queries(12) as short_queue:
        assert schedule_pass() == 0
    for _ in range(20):
        submit(owner, iris, mlp)
    with django_assert_max_num_queries(len(short_queue.captured_queries)):
        assert schedule_pass() == 0


def test_a_job_with_a_broken_stored_request_does_not_block_the_queue(owner, iris, mlp):
    node(cpu_slots=1)
    broken = submit(owner, iris, mlp, priority=9)
    Job.objects.filter(pk=broken.pk).update(spec={"dataset": "nonsense"})
    fine = submit(owner, iris, mlp)
    assert schedule_pass() == 1
    broken.refresh_from_db()
    fine.refresh_from_db()
    assert (broken.state, fine.state) == (Job.State.QUEUED, Job.State.SCHEDULED)
    assert broken.state_reason.startswith("Cannot start: its stored request is no longer valid")


def test_jobs_with_the_same_id_in_different_databases_never_share_checkpoints(
    owner, iris, mlp, storage_root
):
    # A reset database reuses ids; the storage root (a shared filesystem) outlives it.
    first = make_job(owner)
    first_dir = checkpoint_dir(first)
    Job.objects.filter(pk=first.pk).delete()
    second = make_job(owner, id=first.pk)
    assert second.pk == first.pk
    assert checkpoint_dir(second) != first_dir


def test_run_messages_expire_so_a_late_delivery_is_dropped(
    owner, iris, mlp, broker, django_capture_on_commit_callbacks
):
    worker = node(cpu_slots=1)
    submit(owner, iris, mlp)
    before = timezone.now()
    assert run_pass(django_capture_on_commit_callbacks) == 1
    queue = node_queue(worker.name)
    broker.queues.add(queue)
    message = json.loads(broker.redis.lpop(queue))
    assert message["headers"]["task"] == RUN_ATTEMPT_TASK
    expires = datetime.fromisoformat(message["headers"]["expires"])
    wanted = before + timedelta(seconds=RUN_ATTEMPT_EXPIRES_S)
    assert wanted <= expires <= wanted + timedelta(seconds=30)


def test_a_failed_gangs_capacity_stays_taken_until_each_node_has_stopped(owner, iris, mlp):
    first_node, second_node = node(cpu_slots=1), node(cpu_slots=1)
    gang = submit(owner, iris, mlp, **cpu_request(nodes=2))
    assert schedule_pass() == 1
    rank0, rank1 = placements(gang.attempts.get())
    # Rank 1 fails: the attempt (and the job) end at once, while rank 0 is still stopping.
    attempt_exited(exited(rank1, 1))
    gang.refresh_from_db()
    assert gang.state == Job.State.FAILED
    follower = submit(owner, iris, mlp, **cpu_request(nodes=2))
    assert schedule_pass() == 0
    follower.refresh_from_db()
    assert follower.state_reason.startswith(
        "Waiting for capacity: needs 2 nodes with 1 CPU slot each; 1 of them has"
    )
    # Rank 0 confirms that it stopped: now both nodes are free.
    attempt_exited(exited(rank0, -15, cancelled=True))
    assert schedule_pass() == 1
    follower.refresh_from_db()
    assert follower.state == Job.State.SCHEDULED
    assert {p.node for p in placements(follower.attempts.get())} == {first_node, second_node}


def test_a_lost_attempts_capacity_is_free_at_once(owner, iris, mlp):
    node(cpu_slots=1)
    job = submit(owner, iris, mlp, max_restarts=1)
    assert schedule_pass() == 1
    attempt_lost(attempt_id=job.attempts.get().pk, reason="node vanished")
    # Its node may never report again: the requeued job takes the capacity back.
    assert schedule_pass() == 1
    job.refresh_from_db()
    assert (job.state, job.attempts.count()) == (Job.State.SCHEDULED, 2)


def test_an_ended_attempts_rendezvous_port_stays_taken_while_its_rank_0_runs(owner, iris, mlp):
    worker = node(cpu_slots=2, address="10.9.9.9")
    follower = submit(owner, iris, mlp)
    preferred = MASTER_PORT_BASE + (follower.pk * 7919 + 1) % MASTER_PORT_RANGE
    # A failed attempt whose rank 0 on this node has not reported that it stopped.
    old = make_attempt(
        make_job(owner, state=Job.State.FAILED), nodes=[worker], state=Attempt.State.FAILED
    )
    Attempt.objects.filter(pk=old.pk).update(master_addr=worker.address, master_port=preferred)
    assert schedule_pass() == 1
    port = follower.attempts.get().master_port
    assert port != preferred and MASTER_PORT_BASE <= port < MASTER_PORT_BASE + MASTER_PORT_RANGE


def test_a_requeued_job_waits_out_its_backoff_before_the_next_attempt(owner, iris, mlp, settings):
    settings.TRAINYARD_REQUEUE_BACKOFF_S = 30.0
    node(cpu_slots=2)
    job = submit(owner, iris, mlp, max_restarts=3)
    schedule_pass()
    first = job.attempts.get()
    attempt_lost(attempt_id=first.pk, reason="test")
    assert schedule_pass() == 0
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED
    assert job.state_reason.startswith(
        "Requeued after attempt 1; the next attempt starts no sooner"
    )
    assert "(backoff 30s)" in job.state_reason
    # Once the backoff has passed since the attempt ended, the next attempt is placed.
    Attempt.objects.filter(pk=first.pk).update(finished_at=timezone.now() - timedelta(seconds=31))
    assert schedule_pass() == 1
    assert job.attempts.filter(number=2).exists()


def test_the_requeue_backoff_doubles_per_restart_up_to_its_cap(settings):
    settings.TRAINYARD_REQUEUE_BACKOFF_S = 2.0
    settings.TRAINYARD_REQUEUE_BACKOFF_MAX_S = 10.0
    assert [requeue_backoff_s(n) for n in range(6)] == [0.0, 2.0, 4.0, 8.0, 10.0, 10.0]
