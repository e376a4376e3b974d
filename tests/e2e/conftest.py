"""A whole Trainyard, started for real: web (Daphne), control worker, beat, ingest and a node
agent that runs torchrun. The processes are exactly those `bin/dev run` starts
(portal.ops.processes), pointed at the test database."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from pytest_django import DjangoDbBlocker

from portal.devservers import free_port
from portal.ops.processes import process_table
from portal.ops.supervisor import ProcessSupervisor


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the end-to-end tests last. Their stack (a control worker and beat that schedule
    jobs, a node that registers itself) shares the test database for the rest of the session,
    and would otherwise act on the rows of every transactional test that runs after it."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


@dataclass(frozen=True)
class Stack:
    base_url: str
    ws_url: str
    node_name: str
    supervisor: ProcessSupervisor
    log_dir: Path
    # What every process of the stack runs with, for a test that adds a process of its own.
    env: dict[str, str]
    state_dir: Path

    def logs(self) -> str:
        """Every process's log tail, for a failing assertion's message."""
        return "\n".join(
            f"--- {spec.name} ---\n{self.supervisor.tail(spec.name, 40)}"
            for spec in self.supervisor.specs
        )


def _test_database_url() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + str(connection.settings_dict["NAME"])))


def _patient_in_deadlocks(connection: BaseDatabaseWrapper, **kwargs: object) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET deadlock_timeout = '60s'")


@pytest.fixture(scope="session", autouse=True)
def _flush_never_loses_a_deadlock(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker
) -> Iterator[None]:
    """Between end-to-end tests the test database is flushed (TRUNCATE) while the live stack
    still stores heartbeats and the last exits. When the two deadlock, PostgreSQL aborts the
    session that waited `deadlock_timeout` first; this process waits longer, so the victim is
    the stack's transaction, which retries (ingest) or runs again on the next tick (a pass),
    and the flush goes through. The embedded PostgreSQL runs tests as a superuser, who may
    set it."""
    connection_created.connect(_patient_in_deadlocks)
    if connection.connection is not None:
        with django_db_blocker.unblock():
            _patient_in_deadlocks(connection)
    yield
    connection_created.disconnect(_patient_in_deadlocks)


@pytest.fixture(scope="session")
def stack(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("stack")
    port = free_port()
    node_name = f"e2e-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=_test_database_url(),
        TRAINYARD_STATE_DIR=str(state_dir),
        TRAINYARD_NODE_STATE_DIR=str(state_dir / "node"),
        TRAINYARD_NODE_CPU_SLOTS="2",
        TRAINYARD_SCHEDULER_TICK_S="2",
        # tests/e2e/test_preemption.py preempts a job that has run this long (no other test
        # submits a preemptible job).
        TRAINYARD_PREEMPT_MIN_RUN_S="3",
        TRAINYARD_DEV="1",
        # The storage root is shared with this test process, as a cluster's shared filesystem.
        TRAINYARD_STORAGE_ROOT=str(settings.TRAINYARD_STORAGE_ROOT),
    )
    specs = process_table(
        python=sys.executable,
        web_host="127.0.0.1",
        web_port=port,
        node_name=node_name,
        state_dir=state_dir,
    )
    log_dir = state_dir / "logs"
    with ProcessSupervisor(specs, log_dir=log_dir, env=env) as supervisor:
        supervisor.wait_for_http(f"http://127.0.0.1:{port}/login/", timeout=90)
        yield Stack(
            base_url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}",
            node_name=node_name,
            supervisor=supervisor,
            log_dir=log_dir,
            env=env,
            state_dir=state_dir,
        )


def wait_for(
    predicate: Callable[[], object], *, timeout: float, interval: float = 0.25, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
