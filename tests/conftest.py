"""Personas shared by every test: owner, teammate (same team), outsider and admin."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import IRIS_SLUG, MLP_SLUG, catalog_ensure_builtins
from portal.cluster.models import Node
from tests.factories import make_node, make_team, make_user
from tests.jobs.helpers import open_listeners
from workers import signing
from workers.messages import CANCEL_ATTEMPT_TASK, RUN_ATTEMPT_TASK


@pytest.fixture
def owner(db: None) -> User:
    return make_user("owner")


@pytest.fixture
def teammate(db: None, owner: User) -> User:
    user = make_user("teammate")
    make_team("vision", owner, user)
    return user


@pytest.fixture
def outsider(db: None) -> User:
    return make_user("outsider")


@pytest.fixture
def admin_user(db: None) -> User:
    return make_user("admin", is_staff=True)


@pytest.fixture(autouse=True)
def no_requeue_backoff(settings: Any) -> None:
    """A requeued job is placed by the very next pass, so a test can follow a requeue without
    waiting; the tests of the backoff itself set it back (tests/jobs/test_scheduler.py).
    The end-to-end stack's processes run with the real default."""
    settings.TRAINYARD_REQUEUE_BACKOFF_S = 0.0


# ---- catalog, broker and channel layer (added by the control-plane tests) --------------------


@pytest.fixture
def storage_root(settings: Any, tmp_path: Path) -> Path:
    """A private TRAINYARD_STORAGE_ROOT for this test (datasets, checkpoints)."""
    root = tmp_path / "storage"
    settings.TRAINYARD_STORAGE_ROOT = root
    return root


@pytest.fixture
def iris(db: None, storage_root: Path) -> Dataset:
    """The built-in Iris dataset (public, ready), installed under `storage_root`."""
    catalog_ensure_builtins()
    return Dataset.objects.get(slug=IRIS_SLUG)


@pytest.fixture
def mlp(db: None, iris: Dataset) -> ModelArchitecture:
    """The built-in MLP architecture."""
    return ModelArchitecture.objects.get(slug=MLP_SLUG)


@pytest.fixture
def cpu_node(db: None) -> Node:
    """An online node with 2 CPU slots and no GPU: the cluster small jobs are queued on."""
    return make_node(cpu_slots=2)


@dataclass(frozen=True)
class QueuedTask:
    name: str
    args: list[Any]


SIGNED_TASKS = {RUN_ATTEMPT_TASK, CANCEL_ATTEMPT_TASK}


class Broker:
    """Reads (and removes) the Celery messages waiting in a queue of the real Redis broker.
    Node tasks' signatures are checked and stripped.

    Use queue names unique to the test (nodes named with a random suffix): the broker is
    shared by every test run on this machine."""

    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(django_settings.REDIS_URL)
        self.queues: set[str] = set()

    def take(self, queue: str) -> list[QueuedTask]:
        self.queues.add(queue)
        tasks = []
        while (raw := cast(bytes | None, self.redis.lpop(queue))) is not None:
            message = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            name = message["headers"]["task"]
            if name in SIGNED_TASKS:
                # Every message to a node is signed; tests see the arguments the node acts on.
                *args, signature = args
                assert signing.signature_problem(name, args, signature) is None, message
            tasks.append(QueuedTask(name, args))
        return tasks

    def close(self) -> None:
        for queue in self.queues:
            self.redis.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        self.redis.close()


@pytest.fixture
def broker() -> Iterator[Broker]:
    reader = Broker()
    yield reader
    reader.close()


@pytest.fixture
def channel_layer(settings: Any) -> Iterator[Any]:
    """The real Redis channel layer the settings name, under a prefix of this test's own."""
    default = dict(settings.CHANNEL_LAYERS["default"])
    default["CONFIG"] = {**default["CONFIG"], "prefix": f"test-asgi-{uuid.uuid4().hex[:10]}"}
    settings.CHANNEL_LAYERS = {"default": default}
    yield get_channel_layer()
    while open_listeners:
        open_listeners.pop().close()


@pytest.fixture(autouse=True)
def _no_submit_rate_limit(settings: Any) -> None:
    """The suite submits many jobs per user; tests of the limit set TRAINYARD_SUBMIT_RATE."""
    settings.TRAINYARD_SUBMIT_RATE = None


@pytest.fixture(scope="session")
def dry_run_worker() -> Iterator[str]:
    """A real Celery control worker on a queue of this session's own, for the dry run
    `job_submit` waits on (`portal.jobs.services.model_check`). Returns the queue."""
    queue = f"test-dry-run-{uuid.uuid4().hex[:10]}"
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "portal", "worker"),
            *("-Q", queue, "--pool", "solo", "-n", f"{queue}@%h", "-l", "WARNING"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"},
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    yield queue
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.delete(queue, f"_kombu.binding.{queue}")
    client.close()


@pytest.fixture(autouse=True)
def _dry_runs_on_a_real_worker(request: pytest.FixtureRequest, settings: Any) -> None:
    """Every test with a database submits through the real dry run: the worker starts with
    the first such test, and waits get time for its start (the first answer imports torch)."""
    uses_db = {"db", "transactional_db", "live_server"} & set(request.fixturenames)
    if not uses_db and request.node.get_closest_marker("django_db") is None:
        return
    settings.TRAINYARD_DRY_RUN_QUEUE = request.getfixturevalue("dry_run_worker")
    settings.TRAINYARD_DRY_RUN_TIMEOUT_S = 60.0
