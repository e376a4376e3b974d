"""Messages from the control plane to a node's queue (`node.<name>`), sent after the commit.

The portal sends node tasks by name (`workers.messages.RUN_ATTEMPT_TASK`, ...), so it never
imports the node code. Messages are hints: a lost one is repaired from the database (the
reaper, the heartbeat reconciliation), so a failed send is logged, never raised.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import transaction

from portal.celery import app as celery_app
from workers import signing
from workers.messages import node_queue


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
