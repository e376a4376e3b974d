"""Cordoning: by an admin, or by Trainyard after a node's attempts fail three times in a row."""

from __future__ import annotations

import pytest

from portal.cluster.models import Node, NodeEvent
from portal.cluster.services import node_set_cordoned
from portal.jobs.models import Job
from portal.jobs.scheduling import schedule_pass
from portal.jobs.services import attempt_exited, attempt_started
from tests.jobs.helpers import exited, node, placements, started, submit


def run_once(owner, iris, mlp, *, code: int, retryable: bool = True, reason: str = "boom") -> Job:
    job = submit(owner, iris, mlp)
    assert schedule_pass() == 1
    [placement] = placements(job.attempts.get())
    attempt_started(started(placement))
    attempt_exited(exited(placement, code, reason=reason, retryable=retryable))
    job.refresh_from_db()
    return job


@pytest.fixture
def worker(db, settings) -> Node:
    settings.TRAINYARD_NODE_FAILURES_TO_CORDON = 3
    return node(cpu_slots=1)


def test_three_failures_in_a_row_cordon_the_node_with_the_reason(owner, iris, mlp, worker):
    for _ in range(2):
        run_once(owner, iris, mlp, code=1)
    worker.refresh_from_db()
    assert (worker.consecutive_failures, worker.is_cordoned) == (2, False)

    run_once(owner, iris, mlp, code=1, reason="CUDA error: an illegal memory access")

    worker.refresh_from_db()
    assert worker.is_cordoned and worker.status == "cordoned"
    assert worker.cordon_reason == (
        "3 attempts failed in a row on this node (the last: CUDA error: an illegal memory "
        f"access on {worker.name} (rank 0))"
    )
    event = worker.events.get()
    assert (event.kind, event.actor) == (NodeEvent.Kind.CORDON, None)
    # It takes no new work until an admin uncordons it.
    waiting = submit(owner, iris, mlp)
    assert schedule_pass() == 0
    waiting.refresh_from_db()
    assert f"{worker.name} is cordoned" in waiting.state_reason


def test_a_clean_exit_ends_the_run_of_failures(owner, iris, mlp, worker):
    run_once(owner, iris, mlp, code=1)
    run_once(owner, iris, mlp, code=1)
    run_once(owner, iris, mlp, code=0)
    run_once(owner, iris, mlp, code=1)
    worker.refresh_from_db()
    assert (worker.consecutive_failures, worker.is_cordoned) == (1, False)


def test_failures_another_attempt_would_repeat_do_not_count_against_the_node(
    owner, iris, mlp, worker
):
    for _ in range(4):
        run_once(owner, iris, mlp, code=2, retryable=False, reason="bad data")
    worker.refresh_from_db()
    assert (worker.consecutive_failures, worker.is_cordoned) == (0, False)


def test_uncordoning_forgets_the_failures_and_takes_work_again(
    owner, iris, mlp, worker, admin_user
):
    for _ in range(3):
        run_once(owner, iris, mlp, code=1)
    worker.refresh_from_db()
    node_set_cordoned(node=worker, cordoned=False, actor=admin_user, reason="GPU replaced")
    worker.refresh_from_db()
    assert (worker.is_cordoned, worker.consecutive_failures) == (False, 0)
    assert worker.events.first().actor == admin_user
    assert run_once(owner, iris, mlp, code=0).state == Job.State.SUCCEEDED
