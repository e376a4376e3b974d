"""Node messages after the commit: pipelined, and every good one delivered even when the
batch fails."""

from __future__ import annotations

import logging
import uuid

import pytest

from portal.cluster.dispatch import NodeTask, node_tasks_send_on_commit
from tests.conftest import Broker
from workers.messages import CANCEL_ATTEMPT_TASK, node_queue

pytestmark = pytest.mark.django_db


def stop(attempt_id: int, node_name: str, *, args: list[object] | None = None) -> NodeTask:
    stop_request = {"reason": "test", "grace_s": 1.0}
    return NodeTask(
        task=CANCEL_ATTEMPT_TASK,
        args=args if args is not None else [attempt_id, stop_request],
        node_name=node_name,
        label=f"attempt {attempt_id}",
    )


def names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return f"dispatch-a-{suffix}", f"dispatch-b-{suffix}"


def test_every_message_reaches_its_node_queue_in_order(
    broker: Broker, django_capture_on_commit_callbacks
) -> None:
    first, second = names()
    with django_capture_on_commit_callbacks(execute=True):
        node_tasks_send_on_commit([stop(n, first if n % 2 else second) for n in range(1, 2001)])
    # A node pops the oldest first (kombu's BRPOP); the test reads from the other end.
    assert [task.args[0] for task in broker.take(node_queue(first))][::-1] == list(
        range(1, 2001, 2)
    )
    assert [task.args[0] for task in broker.take(node_queue(second))][::-1] == list(
        range(2, 2001, 2)
    )


def test_a_failed_batch_is_sent_again_one_by_one(
    broker: Broker, caplog, django_capture_on_commit_callbacks
) -> None:
    first, second = names()
    # Not JSON: it cannot be signed, so the batch fails halfway.
    unsendable = stop(2, first, args=[2, object()])
    with (
        caplog.at_level(logging.WARNING, logger="portal.cluster.dispatch"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        node_tasks_send_on_commit([stop(1, first), unsendable, stop(3, second)])
    assert [task.args[0] for task in broker.take(node_queue(first))] == [1]
    assert [task.args[0] for task in broker.take(node_queue(second))] == [3]
    assert "sending them one by one" in caplog.text
    assert f"sending {CANCEL_ATTEMPT_TASK} to {first} failed" in caplog.text
