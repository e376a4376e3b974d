"""Control-plane tasks for the dashboard (the `control` queue), run by beat."""

from __future__ import annotations

from celery import shared_task

from portal.dashboard.services import cluster_sample_record

SAMPLE_CLUSTER_TASK = "portal.dashboard.tasks.sample_cluster"


@shared_task(name=SAMPLE_CLUSTER_TASK, ignore_result=True)
def sample_cluster() -> int:
    """One cluster sample (`cluster_sample_record`); returns its id."""
    return cluster_sample_record().pk
