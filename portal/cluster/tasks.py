"""Periodic control-plane tasks for the cluster (run by beat on the `control` queue)."""

from __future__ import annotations

from celery import shared_task

from portal.cluster.services import nodes_reap


@shared_task(name="portal.cluster.tasks.reap_nodes", ignore_result=True)
def reap_nodes() -> int:
    """Mark nodes that stopped sending heartbeats offline and lose their attempts (nothing
    while ingest has heartbeats still to store: see `nodes_reap`)."""
    return len(nodes_reap())
