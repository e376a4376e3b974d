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
    celery_app.send_task(task, args=signed, queue=node_queue(node_name), expires=expires_s)


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


def _send_all(tasks: Sequence[NodeTask]) -> None:
    # One producer (one broker connection) for the whole batch rather than one per message.
    with celery_app.producer_or_acquire() as producer:
        for item in tasks:
            try:
                celery_app.send_task(
                    item.task,
                    args=signing.signed_args(item.task, item.args),
                    queue=node_queue(item.node_name),
                    expires=item.expires_s,
                    producer=producer,
                    argsrepr=item.label or None,
                )
            except Exception:
                logger.warning("sending %s to %s failed", item.task, item.node_name, exc_info=True)


def node_tasks_send_on_commit(tasks: Sequence[NodeTask]) -> None:
    """Send many node tasks once the transaction commits, over one broker connection (the
    scheduler pass, which places hundreds of attempts at a time)."""
    if tasks:
        transaction.on_commit(functools.partial(_send_all, list(tasks)), robust=True)
