"""Control-plane tasks for the cluster (the `control` queue), run by beat."""

from __future__ import annotations

from celery import shared_task

from portal.cluster.services import node_samples_prune


@shared_task(name="portal.cluster.tasks.prune_node_samples", ignore_result=True)
def prune_node_samples() -> int:
    """Keep the nodes' health history bounded (`TRAINYARD_NODE_SAMPLE_RETENTION_H`)."""
    return node_samples_prune()
