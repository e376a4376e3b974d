"""The agent's tasks, called directly (no broker): claim, refuse, verify, start and cancel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

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
from workers.agent import attempts_sweep, cancel_attempt, run_attempt
from workers.messages import RUN_ATTEMPT_EXPIRES_S, AttemptSpec


def events(client: redis.Redis, node: Node) -> list[dict[str, Any]]:
    return entries(client, node.stream("events"))


def test_run_attempt_starts_one_launcher_for_a_duplicate_delivery(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(
        node_name=node.name, attempt_id=31, checkpoint_dir=tmp_path / "ck", epochs=100_000
    )
    assert run_attempt(*signed_run(spec.to_json())) == "started"
    assert run_attempt(*signed_run(spec.to_json())) == "duplicate"
    wait_for(
        lambda: attempts.running_attempts(node.state_dir) == [31], timeout=30, what="the launcher"
    )
    assert cancel_attempt(*signed_cancel(31)) == "signalled"
    wait_for(
        lambda: attempts.running_attempts(node.state_dir) == [], timeout=30, what="the launcher"
    )
    # Each launcher reports exactly one exit: one exit, one launcher.
    exited = [e for e in events(redis_client, node) if e["type"] == "attempt.exited"]
    assert [(e["attempt"], e["cancelled"]) for e in exited] == [(31, True)]
    assert cancel_attempt(*signed_cancel(31)) == "not-running"


def test_a_cancel_right_behind_the_run_stops_the_launcher_before_it_is_ready(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(
        node_name=node.name, attempt_id=35, checkpoint_dir=tmp_path / "ck", epochs=100_000
    )
    assert run_attempt(*signed_run(spec.to_json())) == "started"
    assert cancel_attempt(*signed_cancel(35)) in ("marked", "signalled")
    exited = wait_for(
        lambda: [e for e in events(redis_client, node) if e["type"] == "attempt.exited"],
        timeout=30,
        what="the cancelled exit",
    )
    assert [(e["attempt"], e["cancelled"]) for e in exited] == [(35, True)]


def test_run_attempt_refuses_a_spec_for_another_node(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(node_name="someone-else", attempt_id=32, checkpoint_dir=tmp_path / "ck")
    assert run_attempt(*signed_run(spec.to_json())) == "refused"
    assert not attempts.attempt_dir(node.state_dir, 32).exists()
    assert events(redis_client, node) == []


def test_a_spec_of_the_wrong_shape_is_refused_before_the_claim_with_a_final_exit(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(node_name=node.name, attempt_id=36, checkpoint_dir=tmp_path / "ck").to_json()
    spec["placement"]["device"] = "tpu"
    assert run_attempt(*signed_run(spec)) == "refused"
    assert not attempts.attempt_dir(node.state_dir, 36).exists()
    [exited] = events(redis_client, node)
    assert (exited["type"], exited["attempt"], exited["exit_code"]) == ("attempt.exited", 36, -1)
    assert exited["reason"] == (
        "the node refused the attempt spec: Invalid enum value 'tpu' - at `$.placement.device`"
    )
    # Every attempt of the job would carry the same spec.
    assert exited["retryable"] is False
    # Without a sound attempt id nobody can be told: the node only logs the refusal.
    spec["attempt_id"] = "36"
    assert run_attempt(*signed_run(spec)) == "refused"
    assert len(events(redis_client, node)) == 1


def test_run_attempt_reports_a_checksum_mismatch_as_an_exit_without_launching(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(
        node_name=node.name, attempt_id=33, checkpoint_dir=tmp_path / "ck", sha256="ab" * 32
    )
    assert run_attempt(*signed_run(spec.to_json())) == "failed"
    [exited] = events(redis_client, node)
    assert exited["type"] == "attempt.exited"
    assert (exited["attempt"], exited["exit_code"], exited["cancelled"]) == (33, -1, False)
    assert "expected " + "ab" * 32 in exited["reason"]
    # The next attempt would read the same bytes: the portal should not requeue it.
    assert exited["retryable"] is False
    assert attempts.read_pid(attempts.attempt_dir(node.state_dir, 33)) is None
    assert attempts.claimed_attempts(node.state_dir) == []
    assert cancel_attempt(*signed_cancel(33)) == "not-running"


def test_a_cancel_that_overtakes_its_run_message_wins(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    assert cancel_attempt(*signed_cancel(34)) == "marked"
    spec = iris_spec(node_name=node.name, attempt_id=34, checkpoint_dir=tmp_path / "ck")
    assert run_attempt(*signed_run(spec.to_json())) == "cancelled"
    assert run_attempt(*signed_run(spec.to_json())) == "duplicate"
    [exited] = events(redis_client, node)
    assert (exited["attempt"], exited["cancelled"]) == (34, True)
    assert attempts.read_pid(attempts.attempt_dir(node.state_dir, 34)) is None


def exits(client: redis.Redis, node: Node) -> list[dict[str, Any]]:
    return [e for e in events(client, node) if e["type"] == "attempt.exited"]


def training(spec: AttemptSpec, node: Node) -> str:
    """Start `spec` through the agent and wait until its launcher, torchrun and both ranks run;
    returns the spec path every one of them has on its command line."""
    assert run_attempt(*signed_run(spec.to_json())) == "started"
    directory = attempts.attempt_dir(node.state_dir, spec.attempt_id)
    spec_path = str(directory / "spec.json")
    wait_for(lambda: attempts.read_pid(directory), timeout=30, what="the launcher's pid")
    wait_for(lambda: len(processes_running(spec_path)) >= 4, timeout=60, what="the ranks")
    return spec_path


def kill_launcher(node: Node, attempt_id: int) -> None:
    pid = attempts.read_pid(attempts.attempt_dir(node.state_dir, attempt_id))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    def dead() -> bool:
        # Waitable, not merely a zombie leader: the agent (this test process) is its parent,
        # and until every thread of it has gone, the agent still counts it as alive.
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    wait_for(dead, timeout=10, what="the launcher to die")
    assert attempts.running_attempts(node.state_dir) == []


def test_the_sweep_kills_the_gang_of_a_launcher_killed_by_sigkill_and_reports_its_exit(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(
        node_name=node.name, attempt_id=61, checkpoint_dir=tmp_path / "ck", epochs=100_000
    )
    spec_path = training(spec, node)
    try:
        kill_launcher(node, 61)
        # As the OOM killer leaves it: torchrun and its ranks train on, unsupervised.
        assert len(processes_running(spec_path)) >= 3
        assert attempts.claimed_attempts(node.state_dir) == [61]
        assert exits(redis_client, node) == []

        assert attempts_sweep() == [61]
        assert processes_running(spec_path) == []
        [exited] = exits(redis_client, node)
        assert (exited["attempt"], exited["exit_code"], exited["cancelled"]) == (61, -1, False)
        assert (exited["reason"], exited["retryable"]) == ("the launcher died", True)
        assert attempts.claimed_attempts(node.state_dir) == []
        # Swept once: the next sweep finds nothing to do.
        assert attempts_sweep() == []
    finally:
        for process in processes_running(spec_path):
            process.kill()


def test_a_cancel_stops_the_gang_of_a_dead_launcher_at_once(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(
        node_name=node.name, attempt_id=62, checkpoint_dir=tmp_path / "ck", epochs=100_000
    )
    spec_path = training(spec, node)
    try:
        kill_launcher(node, 62)
        assert cancel_attempt(*signed_cancel(62)) == "stopped"
        assert processes_running(spec_path) == []
        [exited] = exits(redis_client, node)
        assert (exited["attempt"], exited["cancelled"]) == (62, True)
        assert cancel_attempt(*signed_cancel(62)) == "not-running"
    finally:
        for process in processes_running(spec_path):
            process.kill()


def test_the_sweep_leaves_an_attempt_alone_while_its_dataset_is_still_being_fetched(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    # A FIFO as the dataset: the fetch blocks until this test writes to it.
    fifo = tmp_path / "slow.csv"
    os.mkfifo(fifo)
    spec = iris_spec(
        node_name=node.name,
        attempt_id=63,
        checkpoint_dir=tmp_path / "ck",
        data=fifo,
        sha256="0" * 64,
    )
    outcome: list[str] = []
    thread = threading.Thread(
        target=lambda: outcome.append(run_attempt(*signed_run(spec.to_json())))
    )
    thread.start()
    try:
        wait_for(
            lambda: attempts.claimed_attempts(node.state_dir) == [63], timeout=10, what="claim"
        )
        # Claimed, no launcher: but this process is still starting it.
        assert attempts_sweep() == []
        assert exits(redis_client, node) == []
    finally:
        with fifo.open("wb") as writer:
            writer.write(b"not the bytes the portal validated\n")
        thread.join(timeout=30)
    assert outcome == ["failed"]
    [exited] = exits(redis_client, node)
    assert exited["reason"].startswith("dataset: ")
    assert attempts_sweep() == []


def test_a_start_that_fails_after_the_claim_reports_an_exit(
    node: Node, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The launcher cannot be started (Popen raises OSError), as on a node whose Python broke.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    spec = iris_spec(node_name=node.name, attempt_id=64, checkpoint_dir=tmp_path / "ck")
    assert run_attempt(*signed_run(spec.to_json())) == "failed"
    [exited] = exits(redis_client, node)
    assert (exited["attempt"], exited["exit_code"], exited["cancelled"]) == (64, -1, False)
    assert exited["reason"].startswith("the node could not start it: FileNotFoundError")
    assert exited["retryable"] is True
    assert attempts.claimed_attempts(node.state_dir) == []
    assert attempts_sweep() == []


def test_a_delivery_with_another_spec_under_a_known_id_sets_the_old_directory_aside(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    # What a reset database does: attempt ids start again, and a finished attempt 65 of
    # another job is still on this node.
    old = iris_spec(node_name=node.name, attempt_id=65, checkpoint_dir=tmp_path / "old", job_id=7)
    directory = attempts.attempt_dir(node.state_dir, 65)
    directory.mkdir(parents=True)
    (directory / "spec.json").write_text(old.dumps())
    (directory / "exit.json").write_text("{}")
    new = iris_spec(
        node_name=node.name,
        attempt_id=65,
        checkpoint_dir=tmp_path / "new",
        job_id=8,
        sha256="cd" * 32,  # fails fast, after the claim
    )
    assert run_attempt(*signed_run(new.to_json())) == "failed"
    stored, set_aside = attempts.read_spec_json(directory), None
    assert stored is not None and stored["job_id"] == 8
    [aside] = (node.state_dir / "attempts" / "stale").iterdir()
    assert aside.name.startswith("65-")
    set_aside = attempts.read_spec_json(aside)
    assert set_aside is not None and set_aside["job_id"] == 7
    [exited] = exits(redis_client, node)
    assert (exited["job"], exited["attempt"]) == (8, 65)
    # The same spec again is a duplicate, as ever.
    assert run_attempt(*signed_run(new.to_json())) == "duplicate"
    assert attempts.running_attempts(node.state_dir) == []


def test_a_delivery_under_the_id_of_another_running_attempt_is_refused_with_an_exit(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    old = iris_spec(
        node_name=node.name,
        attempt_id=66,
        checkpoint_dir=tmp_path / "old",
        job_id=7,
        epochs=100_000,
    )
    assert run_attempt(*signed_run(old.to_json())) == "started"
    directory = attempts.attempt_dir(node.state_dir, 66)
    try:
        wait_for(lambda: attempts.running_attempts(node.state_dir) == [66], timeout=30, what="run")
        new = iris_spec(node_name=node.name, attempt_id=66, checkpoint_dir=tmp_path / "new")
        assert run_attempt(*signed_run(new.to_json())) == "refused"
        [exited] = exits(redis_client, node)
        assert (exited["job"], exited["attempt"], exited["exit_code"]) == (1, 66, -1)
        assert "is in use on" in exited["reason"] and "job 7" in exited["reason"]
        # The running attempt keeps its directory and its launcher.
        stored = attempts.read_spec_json(directory)
        assert stored is not None and stored["job_id"] == 7
        assert not (directory / "exit.json").exists()
        assert attempts.running_attempts(node.state_dir) == [66]
    finally:
        assert cancel_attempt(*signed_cancel(66)) in ("signalled", "stopped")
        wait_for(lambda: attempts.running_attempts(node.state_dir) == [], timeout=30, what="stop")


def test_a_cancel_mark_older_than_any_live_run_message_does_not_cancel_a_new_delivery(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    # A cancel that once overtook a run message that never came, under a reused id.
    assert cancel_attempt(*signed_cancel(67)) == "marked"
    directory = attempts.attempt_dir(node.state_dir, 67)
    long_ago = time.time() - RUN_ATTEMPT_EXPIRES_S - 60
    os.utime(directory / "cancel", (long_ago, long_ago))
    spec = iris_spec(
        node_name=node.name, attempt_id=67, checkpoint_dir=tmp_path / "ck", sha256="ef" * 32
    )
    assert (
        run_attempt(*signed_run(spec.to_json())) == "failed"
    )  # the dataset check ran: it was not cancelled
    [exited] = exits(redis_client, node)
    assert exited["cancelled"] is False
    assert not (directory / "cancel").exists()


def test_the_sweep_kills_exactly_the_processes_that_name_the_attempts_spec(
    node: Node, tmp_path: Path
):
    # The sweep matches processes by the spec path on their command line, exactly.
    spec = iris_spec(node_name=node.name, attempt_id=68, checkpoint_dir=tmp_path / "ck")
    directory = attempts.attempt_dir(node.state_dir, 68)
    directory.mkdir(parents=True)
    spec_path = directory / "spec.json"
    spec_path.write_text(spec.dumps())
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "--spec", str(spec_path)]
    )
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "--spec", str(spec_path) + ".x"]
    )
    try:
        assert attempts_sweep() == [68]
        # Gone (the sweep's wait may have reaped it already: this test is its parent).
        sleeper.wait(timeout=5)
        assert bystander.poll() is None
    finally:
        for process in (sleeper, bystander):
            process.kill()
            process.wait()
