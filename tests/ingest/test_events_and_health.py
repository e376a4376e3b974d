"""Attempt events move jobs through their lifecycle; heartbeats keep nodes alive."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from portal.cluster.models import Node
from portal.jobs.models import Attempt, Job, MetricPoint
from tests.factories import make_attempt, make_job, make_node
from tests.ingest.conftest import Streams, metric


def started(attempt: Attempt, node: str) -> dict[str, Any]:
    return {
        "type": "attempt.started",
        "job": attempt.job_id,
        "attempt": attempt.pk,
        "node": node,
        "node_rank": 0,
        "ts": 1_750_000_000.0,
    }


def exited(attempt: Attempt, node: str, exit_code: int = 0) -> dict[str, Any]:
    return {
        **started(attempt, node),
        "type": "attempt.exited",
        "exit_code": exit_code,
        "cancelled": False,
        "reason": "",
        "retryable": True,
    }


def heartbeat(node: str, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "node": node,
        "hostname": "gpu-box",
        "address": "10.0.0.7",
        "pool": "default",
        "labels": {},
        "cpu_slots": 8,
        "gpu_count": 0,
        "cpu_percent": 12.5,
        "memory_used": 1 << 30,
        "memory_total": 8 << 30,
        "disk_used": 10 << 30,
        "disk_total": 100 << 30,
        "gpus": [],
        "running_attempts": [],
        "claimed_attempts": [],
        "ts": 1_750_000_000.0,
    }
    entry.update(fields)
    return entry


def test_events_move_a_job_to_running_then_succeeded(
    streams: Streams, transactional_db: None, owner: User
) -> None:
    job = make_job(owner, state=Job.State.SCHEDULED)
    attempt = make_attempt(job, nodes=[make_node("gpu-a")], state=Attempt.State.STARTING)
    ingestor = streams.ingestor()

    streams.add("events", started(attempt, "gpu-a"))
    streams.drain(ingestor)
    job.refresh_from_db()
    assert job.state == Job.State.RUNNING

    # The last point and the exit land in one batch: the point is stored either way.
    streams.add("metrics", metric(attempt, 0))
    streams.add("events", exited(attempt, "gpu-a"))
    streams.drain(ingestor)
    job.refresh_from_db()
    attempt.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    assert attempt.state == Attempt.State.SUCCEEDED
    assert MetricPoint.objects.filter(attempt=attempt).count() == 1
    assert streams.pending("events") == 0


def test_a_non_retryable_exit_fails_the_job_with_restarts_left(
    streams: Streams, transactional_db: None, owner: User
) -> None:
    job = make_job(owner, state=Job.State.RUNNING, max_restarts=3)
    attempt = make_attempt(job, nodes=[make_node("gpu-a")])
    # The launcher saw the trainer reject its data: another attempt would fail the same way.
    streams.add("events", {**exited(attempt, "gpu-a", exit_code=1), "retryable": False})

    assert streams.drain(streams.ingestor()) == 1

    job.refresh_from_db()
    assert (job.state, job.restarts) == (Job.State.FAILED, 0)


def test_an_exit_reported_twice_changes_nothing_the_second_time(
    streams: Streams, transactional_db: None, owner: User
) -> None:
    job = make_job(owner, state=Job.State.RUNNING, max_restarts=0)
    attempt = make_attempt(job, nodes=[make_node("gpu-a")])
    streams.add("events", exited(attempt, "gpu-a", exit_code=1))
    streams.add("events", exited(attempt, "gpu-a", exit_code=0))

    assert streams.drain(streams.ingestor()) == 2

    attempt.refresh_from_db()
    assert attempt.state == Attempt.State.FAILED
    assert attempt.exit_code == 1


def test_a_heartbeat_registers_and_refreshes_a_node(
    streams: Streams, transactional_db: None
) -> None:
    streams.add("health", heartbeat("gpu-b", cpu_percent=10.0, ts=1_750_000_000.0))
    streams.add("health", heartbeat("gpu-b", cpu_percent=55.0, ts=1_750_000_002.0))

    assert streams.drain(streams.ingestor()) == 2

    node = Node.objects.get(name="gpu-b")
    assert node.state == Node.State.ONLINE
    assert node.cpu_slots == 8
    assert node.health["cpu_percent"] == 55.0
    assert node.last_heartbeat_at is not None


def test_a_malformed_heartbeat_is_skipped(streams: Streams, transactional_db: None) -> None:
    streams.add("health", heartbeat("gpu-c", cpu_slots="eight"))
    streams.add("health", {"node": "gpu-c"})

    assert streams.drain(streams.ingestor()) == 2

    assert not Node.objects.filter(name="gpu-c").exists()
    assert streams.pending("health") == 0


def test_a_gpu_reading_of_nan_is_stored_as_null(streams: Streams, transactional_db: None) -> None:
    gpu = {
        "index": 0,
        "uuid": "GPU-0",
        "name": "H200",
        "utilization": 97.0,
        "memory_used": 1 << 30,
        "memory_total": 141 << 30,
        "temperature": float("nan"),
        "power": float("inf"),
        "ecc_uncorrected": None,
    }
    # What a node's json.dumps writes for an NVML sensor that returned NaN.
    streams.add("health", heartbeat("gpu-d", gpu_count=1, gpus=[gpu]))

    assert streams.drain(streams.ingestor()) == 1

    stored = Node.objects.get(name="gpu-d").health["gpus"][0]
    assert (stored["utilization"], stored["temperature"], stored["power"]) == (97.0, None, None)
    assert streams.pending("health") == 0
