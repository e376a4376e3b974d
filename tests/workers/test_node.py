"""The node agent end to end: a real Celery worker on the node's queue, fed through Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.workers.conftest import Node
from tests.workers.support import (
    entries,
    iris_spec,
    processes_running,
    signed_cancel,
    signed_run,
    wait_for,
)
from workers import attempts
from workers.messages import CANCEL_ATTEMPT_TASK, RUN_ATTEMPT_TASK, node_queue


@pytest.fixture
def agent(node: Node, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "TRAINYARD_HEARTBEAT_S": "0.5", "TRAINYARD_NODE_CPU_SLOTS": "3"}
    log = (tmp_path / "agent.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.node", "--name", node.name],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log.close()


@pytest.fixture
def portal(redis_url: str) -> Iterator[Celery]:
    """What the portal does: send by task name, JSON, to the node's queue."""
    app = Celery("portal-stand-in", broker=redis_url)
    app.conf.update(task_serializer="json", accept_content=["json"])
    yield app
    app.close()


def test_the_node_heartbeats_runs_an_attempt_and_reports_its_exit(
    node: Node,
    agent: subprocess.Popen[bytes],
    portal: Celery,
    redis_client: redis.Redis,
    tmp_path: Path,
):
    [beat] = wait_for(
        lambda: entries(redis_client, node.stream("health"))[:1],
        timeout=30,
        what="the first heartbeat",
    )
    assert (beat["node"], beat["cpu_slots"], beat["gpu_count"]) == (node.name, 3, 0)

    spec = iris_spec(node_name=node.name, attempt_id=51, checkpoint_dir=tmp_path / "ck", epochs=2)
    portal.send_task(RUN_ATTEMPT_TASK, args=signed_run(spec.to_json()), queue=node_queue(node.name))
    # A heartbeat taken while it trains lists the attempt as running.
    wait_for(
        lambda: any(
            51 in b["running_attempts"] for b in entries(redis_client, node.stream("health"))
        ),
        timeout=60,
        what="a heartbeat listing attempt 51",
    )
    exited = wait_for(
        lambda: [
            e for e in entries(redis_client, node.stream("events")) if e["type"] == "attempt.exited"
        ],
        timeout=90,
        what="the exit event",
    )
    assert [(e["attempt"], e["exit_code"], e["cancelled"]) for e in exited] == [(51, 0, False)]
    assert (tmp_path / "ck" / "attempt-51" / "latest.pt").is_file()
    # Claimed while it ran; no longer once its exit was recorded.
    assert any(51 in b["claimed_attempts"] for b in entries(redis_client, node.stream("health")))
    wait_for(
        lambda: 51 not in entries(redis_client, node.stream("health"))[-1]["claimed_attempts"],
        timeout=10,
        what="a heartbeat no longer claiming attempt 51",
    )

    # A cancel for an attempt that already finished is harmless.
    portal.send_task(CANCEL_ATTEMPT_TASK, args=signed_cancel(51), queue=node_queue(node.name))
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=20) == 0


def test_the_node_reports_the_exit_of_an_attempt_whose_launcher_was_killed(
    node: Node,
    agent: subprocess.Popen[bytes],
    portal: Celery,
    redis_client: redis.Redis,
    tmp_path: Path,
):
    spec = iris_spec(
        node_name=node.name, attempt_id=52, checkpoint_dir=tmp_path / "ck", epochs=100_000
    )
    portal.send_task(RUN_ATTEMPT_TASK, args=signed_run(spec.to_json()), queue=node_queue(node.name))
    directory = attempts.attempt_dir(node.state_dir, 52)
    spec_path = str(directory / "spec.json")
    try:
        # torchrun and its two ranks name the spec; the launcher may be the node's spare
        # (`--standby <state dir>` on its command line), so it is found by its pid file.
        wait_for(lambda: len(processes_running(spec_path)) >= 3, timeout=60, what="the ranks")
        pid = wait_for(lambda: attempts.read_pid(directory), timeout=10, what="the launcher")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would
        [exited] = wait_for(
            lambda: [
                e
                for e in entries(redis_client, node.stream("events"))
                if e["type"] == "attempt.exited"
            ],
            timeout=30,
            what="the exit the node's sweeper reports",
        )
        assert (exited["attempt"], exited["exit_code"], exited["reason"]) == (
            52,
            -1,
            "the launcher died",
        )
        wait_for(lambda: processes_running(spec_path) == [], timeout=10, what="the orphans")
    finally:
        for process in processes_running(spec_path):
            process.kill()
