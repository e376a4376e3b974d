"""The spare launcher (`workers.spare`): started ahead, it becomes the next attempt's launcher,
runs it through real torchrun and reports its phases; without an agent it goes away."""

from __future__ import annotations

from pathlib import Path

import psutil
import redis

from tests.workers.conftest import Node
from tests.workers.support import entries, iris_spec, signed_run, wait_for
from workers import attempts, spare
from workers.agent import run_attempt
from workers.messages import NODE_PHASES


def test_a_spare_launcher_runs_the_next_attempt_and_reports_its_phases(
    node: Node, redis_client: redis.Redis, tmp_path: Path
) -> None:
    spare.spare_ensure(node.state_dir, rest_s=0)
    try:
        waiting = spare.spare_pid()
        assert waiting is not None
        spec = iris_spec(
            node_name=node.name, attempt_id=61, checkpoint_dir=tmp_path / "ck", epochs=1
        )
        assert run_attempt(*signed_run(spec.to_json())) == "started"
        assert spare.spare_pid() is None  # handed out, and not replaced at once
        directory = attempts.attempt_dir(node.state_dir, 61)
        wait_for(lambda: attempts.exit_recorded(directory), timeout=120, what="the exit")
        assert attempts.read_pid(directory) == waiting
        events = entries(redis_client, node.stream("events"))
        phases = [e["phase"] for e in events if e["type"] == "attempt.phase"]
        assert phases == list(NODE_PHASES)
        [exited] = [e for e in events if e["type"] == "attempt.exited"]
        assert exited["exit_code"] == 0, exited
        # The spare moved its output to the attempt's log, as a launcher started for it does.
        assert "torchrun pid" in (directory / "launcher.log").read_text()
    finally:
        spare.spare_discard()


def test_a_spare_exits_when_the_agent_lets_it_go(node: Node) -> None:
    spare.spare_ensure(node.state_dir, rest_s=0)
    pid = spare.spare_pid()
    assert pid is not None
    process = psutil.Process(pid)
    assert "--standby" in process.cmdline()
    spare.spare_discard()
    assert not psutil.pid_exists(pid) or process.status() == psutil.STATUS_ZOMBIE
    assert spare.spare_pid() is None
