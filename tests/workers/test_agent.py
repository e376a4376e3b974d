"""The agent's tasks, called directly (no broker): claim, refuse, verify, start and cancel."""

from __future__ import annotations

from pathlib import Path

import redis

from tests.workers.conftest import Node
from tests.workers.support import entries, iris_spec, wait_for
from workers import attempts
from workers.agent import cancel_attempt, run_attempt


def events(client: redis.Redis, node: Node) -> list[dict]:
    return entries(client, node.stream("events"))


def test_run_attempt_starts_one_launcher_for_a_duplicate_delivery(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(
        node_name=node.name, attempt_id=31, checkpoint_dir=tmp_path / "ck", epochs=100_000
    )
    assert run_attempt(spec.to_json()) == "started"
    assert run_attempt(spec.to_json()) == "duplicate"
    wait_for(
        lambda: attempts.running_attempts(node.state_dir) == [31], timeout=30, what="the launcher"
    )
    assert cancel_attempt(31) == "signalled"
    wait_for(
        lambda: attempts.running_attempts(node.state_dir) == [], timeout=30, what="the launcher"
    )
    # Each launcher reports exactly one exit: one exit, one launcher.
    exited = [e for e in events(redis_client, node) if e["type"] == "attempt.exited"]
    assert [(e["attempt"], e["cancelled"]) for e in exited] == [(31, True)]
    assert cancel_attempt(31) == "not-running"


def test_a_cancel_right_behind_the_run_stops_the_launcher_before_it_is_ready(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(
        node_name=node.name, attempt_id=35, checkpoint_dir=tmp_path / "ck", epochs=100_000
    )
    assert run_attempt(spec.to_json()) == "started"
    assert cancel_attempt(35) in ("marked", "signalled")
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
    assert run_attempt(spec.to_json()) == "refused"
    assert not attempts.attempt_dir(node.state_dir, 32).exists()
    assert events(redis_client, node) == []


def test_run_attempt_reports_a_checksum_mismatch_as_an_exit_without_launching(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    spec = iris_spec(
        node_name=node.name, attempt_id=33, checkpoint_dir=tmp_path / "ck", sha256="ab" * 32
    )
    assert run_attempt(spec.to_json()) == "failed"
    [exited] = events(redis_client, node)
    assert exited["type"] == "attempt.exited"
    assert (exited["attempt"], exited["exit_code"], exited["cancelled"]) == (33, -1, False)
    assert "expected " + "ab" * 32 in exited["reason"]
    assert attempts.read_pid(attempts.attempt_dir(node.state_dir, 33)) is None
    assert cancel_attempt(33) == "not-running"


def test_a_cancel_that_overtakes_its_run_message_wins(
    node: Node, redis_client: redis.Redis, tmp_path: Path
):
    assert cancel_attempt(34) == "marked"
    spec = iris_spec(node_name=node.name, attempt_id=34, checkpoint_dir=tmp_path / "ck")
    assert run_attempt(spec.to_json()) == "cancelled"
    assert run_attempt(spec.to_json()) == "duplicate"
    [exited] = events(redis_client, node)
    assert (exited["attempt"], exited["cancelled"]) == (34, True)
    assert attempts.read_pid(attempts.attempt_dir(node.state_dir, 34)) is None
