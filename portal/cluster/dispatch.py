"""Messages from the control plane to a node's queue (`node.<name>`), sent after the commit.

The portal sends node tasks by name (`workers.messages.RUN_ATTEMPT_TASK`, ...), so it never
imports the node code. Messages are hints: a lost one is repaired from the database (the
reaper, the heartbeat reconciliation), so a failed send is logged, never raised.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from portal.celery import app as celery_app
from workers import signing
from workers.messages import node_queue

logger = logging.getLogger(__name__)


def _send(task: str, args: list[Any], node_name: str, expires_s: float | None) -> None:
    # Nodes act only on messages signed with the key they share with the portal.
    signed = signing.signed_args(task, args)
    celery_app.send_task(
        task, args=signed, queue=node_queue(node_name), expires=expires_s, ignore_result=True
    )


def node_task_send_on_commit(
    *, task: str, args: list[Any], node_name: str, expires_s: float | None = None
) -> None:
    """Send `task` by name to the node's queue once the transaction commits; the node drops it
    unstarted once `expires_s` seconds have passed."""
    transaction.on_commit(functools.partial(_send, task, args, node_name, expires_s), robust=True)


@dataclass(frozen=True)
class NodeTask:
    """One message for a node's queue: the task's name, its arguments, and its expiry."""

    task: str
    args: list[Any]
    node_name: str
    expires_s: float | None = None
    # What the broker's logs show instead of the arguments (Celery would repr them whole).
    label: str = ""


def _publish(item: NodeTask, producer: Any) -> None:
    # Node tasks return nothing anyone reads (nodes report through Redis Streams), and a
    # result the portal waits for would have the sending process subscribe to it: two Redis
    # round trips per message outside a Celery worker, for a result that never comes.
    celery_app.send_task(
        item.task,
        args=signing.signed_args(item.task, item.args),
        queue=node_queue(item.node_name),
        expires=item.expires_s,
        producer=producer,
        argsrepr=item.label or None,
        ignore_result=True,
    )


def _send_all(tasks: Sequence[NodeTask]) -> None:
    # One producer (one broker connection) for the whole batch, and its messages pipelined
    # (kombu's `Producer.batch`: one round trip per thousand rather than one per message).
    # Each node queue is declared once per connection; kombu remembers the declared ones.
    try:
        with celery_app.producer_or_acquire() as producer, producer.batch():
            for item in tasks:
                _publish(item, producer)
        return
    except Exception:
        # A failed pipeline leaves unknown which messages went out: send each again on its
        # own (a node ignores a second delivery of a run or cancel message).
        logger.warning(
            "sending %d node tasks in one batch failed; sending them one by one",
            len(tasks),
            exc_info=True,
        )
    with celery_app.producer_or_acquire() as producer:
        for item in tasks:
            try:
                _publish(item, producer)
            except Exception:
                logger.warning("sending %s to %s failed", item.task, item.node_name, exc_info=True)


def node_tasks_send_on_commit(tasks: Sequence[NodeTask]) -> None:
    """Send many node tasks once the transaction commits, over one broker connection (the
    scheduler pass, which places hundreds of attempts at a time)."""
    if tasks:
        transaction.on_commit(functools.partial(_send_all, list(tasks)), robust=True)
