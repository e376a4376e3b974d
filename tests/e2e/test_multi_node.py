"""Gangs across node agents: a 2 nodes x 2 processes job on two agents of the stack, and the
loss of one of them (`kill -9`) in the middle of a job, survived by requeue and resume."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from portal.accounts.services import api_token_create
from portal.catalog.services import catalog_ensure_builtins
from portal.cluster.models import Node
from portal.jobs.models import Attempt, Job, LogLine, MetricPoint, Placement
from tests.e2e.agents import NodeAgent, iris_2x2_body, others_gone, wait_until
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
# What these tests measure, shown live with `-o log_cli=true`.
timing = logging.getLogger("tests.e2e.timing")


@pytest.fixture(scope="module")
def second_agent(stack: Stack) -> Iterator[NodeAgent]:
    """A second node agent beside the stack's own: another name, queue and state directory."""
    agent = NodeAgent(
        name=f"e2e-b-{uuid.uuid4().hex[:6]}", state_dir=stack.state_dir, env=stack.env
    )
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


def _online(*names: str) -> bool:
    return Node.objects.filter(name__in=names, state=Node.State.ONLINE).count() == len(names)


def _ready(stack: Stack, agent: NodeAgent) -> tuple[str, dict[str, Any]]:
    """A researcher's token and the body of a 2 x 2 Iris job, once both nodes are online."""
    catalog_ensure_builtins()
    user = make_user("researcher")
    token = api_token_create(user=user, name="e2e").plaintext
    wait_for(
        lambda: _online(stack.node_name, agent.name),
        timeout=60,
        what="both node agents to register",
    )
    wait_for(
        lambda: others_gone(stack.node_name, agent.name),
        timeout=30,
        what="agents of earlier tests to be offline",
    )
    body = iris_2x2_body("iris 2x2")
    return token, body


def _submit(stack: Stack, token: str, body: dict[str, Any]) -> int:
    response = httpx.post(
        f"{stack.base_url}/api/v1/jobs/",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _logs(stack: Stack, *agents: NodeAgent) -> str:
    return "\n".join([stack.logs(), *(agent.tail() for agent in agents)])


def _rank_processes(attempt_id: int) -> list[psutil.Process]:
    """The attempt's ranks on this machine (not the torchrun that started them)."""
    marker = f"attempts/{attempt_id}/"
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if (
            proc.info["status"] != psutil.STATUS_ZOMBIE
            and "workers.train" in cmdline
            and "torch.distributed.run" not in cmdline
            and marker in cmdline
        ):
            found.append(proc)
    return found


def _assert_points_whole(attempt: Attempt) -> list[MetricPoint]:
    """No gap and no duplicate within the attempt: its seqs are exactly 0..n-1."""
    points = list(MetricPoint.objects.filter(attempt=attempt).order_by("seq"))
    assert [p.seq for p in points] == list(range(len(points))), f"attempt {attempt.number}"
    train = [p.step for p in points if p.split == MetricPoint.Split.TRAIN]
    assert train == sorted(set(train)), f"attempt {attempt.number} repeats or reorders a step"
    return points


def test_a_two_node_job_runs_two_ranks_on_each_agent_and_learns(
    stack: Stack, second_agent: NodeAgent
) -> None:
    token, body = _ready(stack, second_agent)
    started = time.monotonic()
    job_id = _submit(stack, token, body)
    try:
        wait_for(lambda: Job.objects.get(pk=job_id).is_terminal, timeout=300, what="the 2x2 job")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_logs(stack, second_agent)}") from exc
    job = Job.objects.get(pk=job_id)
    assert job.state == Job.State.SUCCEEDED, f"{job.state_reason}\n{_logs(stack, second_agent)}"
    timing.warning("2x2 job finished in %.1fs", time.monotonic() - started)

    attempt = Attempt.objects.get(job=job)
    placed = dict(Placement.objects.filter(attempt=attempt).values_list("node_rank", "node__name"))
    assert sorted(placed.values()) == sorted([stack.node_name, second_agent.name])
    # Each agent ran its share: two ranks each, as its launcher's log lines show.
    ranks_on: dict[int, set[str]] = {}
    for node_rank, line in LogLine.objects.filter(
        attempt=attempt, line__contains="epoch 40/40 local"
    ).values_list("node_rank", "line"):
        ranks_on.setdefault(node_rank, set()).add(line.split("]")[0] + "]")
    assert sorted(ranks_on) == [0, 1], ranks_on
    assert [len(ranks) for ranks in ranks_on.values()] == [2, 2], ranks_on
    assert ranks_on[0] | ranks_on[1] == {"[rank 0]", "[rank 1]", "[rank 2]", "[rank 3]"}
    names = {stack.node_name: stack.state_dir / f"node-{stack.node_name}"}
    names[second_agent.name] = second_agent.node_state_dir
    for name in placed.values():
        assert (names[name] / "attempts" / str(attempt.pk) / "exit.json").exists(), name

    points = _assert_points_whole(attempt)
    val = [p for p in points if p.split == MetricPoint.Split.VAL]
    assert [p.epoch for p in val] == list(range(1, 41))
    assert val[-1].accuracy is not None and val[-1].accuracy >= 0.9


def test_kill_9_of_a_node_mid_job_is_survived_by_requeue_and_resume(
    stack: Stack, second_agent: NodeAgent
) -> None:
    token, body = _ready(stack, second_agent)
    body["training"]["epochs"] = 5000
    # Slack: the surviving ranks may fail on their own (a dead Gloo peer) before the reaper
    # takes the node offline, and an attempt placed on the dead node meanwhile is lost too.
    body["max_restarts"] = 4
    job_id = _submit(stack, token, body)
    try:
        wait_for(
            lambda: (
                MetricPoint.objects.filter(job_id=job_id, split=MetricPoint.Split.VAL).count() >= 3
            ),
            timeout=180,
            what="three epochs (and so three checkpoints)",
        )
        first = Attempt.objects.get(job_id=job_id, number=1)
        assert len(_rank_processes(first.pk)) == 4, "expected four ranks running"

        killed_at = time.monotonic()
        killed = second_agent.kill9()
        # Its two ranks, their torchrun, its launcher and the agent.
        assert killed >= 5, f"killed only {killed} processes"
        offline = wait_until(
            lambda: Node.objects.filter(name=second_agent.name, state=Node.State.OFFLINE).exists(),
            timeout=20,
        )
        offline_after = None if offline is None else time.monotonic() - killed_at
        timing.warning("node offline %.1fs after kill -9", offline_after or -1)
        assert offline_after is not None and offline_after < 10, offline_after
        # The surviving node's ranks are stopped (cancelled, or gone with their peers).
        gone_after = wait_until(lambda: not _rank_processes(first.pk), timeout=20)
        timing.warning("every rank gone %.1fs after kill -9", time.monotonic() - killed_at)
        assert gone_after is not None, [p.cmdline() for p in _rank_processes(first.pk)]
        first.refresh_from_db()
        assert first.state in {Attempt.State.LOST, Attempt.State.FAILED}, first.state

        # The node comes back (its machine restarted); the job's next attempt needs both.
        second_agent.start()
        wait_for(
            lambda: MetricPoint.objects.filter(
                attempt__job_id=job_id, attempt__number__gt=1, split=MetricPoint.Split.VAL
            ).exists(),
            timeout=180,
            what="the second attempt to train",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_logs(stack, second_agent)}") from exc
    finally:
        httpx.post(
            f"{stack.base_url}/api/v1/jobs/{job_id}/cancel/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    wait_for(
        lambda: Job.objects.get(pk=job_id).is_terminal, timeout=60, what="the cancel to finish"
    )
    second = (
        Attempt.objects.filter(job_id=job_id, number__gt=1, metric_points__isnull=False)
        .distinct()
        .earliest("number")
    )
    _assert_points_whole(first)
    second_points = _assert_points_whole(second)
    # The next attempt that trained resumed from the newest checkpoint: its first point is
    # the step right after the one its trainer says it resumed from, and that is after 0.
    # Every rank says so, and all must say the same.
    [said] = {
        line.split("resuming after epoch ")[1].split(" from ")[0]
        for line in LogLine.objects.filter(
            attempt=second, line__contains="resuming after epoch"
        ).values_list("line", flat=True)
    }
    words = said.split()
    epoch, step = int(words[0]), int(words[2].rstrip(")"))
    resumed = second_points[0]
    assert step > 0 and (resumed.epoch, resumed.step) == (epoch + 1, step + 1), said
