"""GET /api/v1/jobs/<id>/timeline/: the utilisation and memory of the devices a job held, from
its nodes' heartbeat history as ingest stores it, and nothing of other devices or times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.urls import reverse
from pytest_django.fixtures import Settings

from portal.cluster.models import NodeSample
from portal.cluster.services import node_samples_prune
from portal.jobs.models import Placement
from portal.ops.ingest.apply import Batch, batch_apply
from tests.api.conftest import TokenClient
from tests.factories import make_attempt, make_heartbeat, make_job, make_node
from workers.messages import GpuHealth, HealthEntry

START = datetime(2026, 1, 1, 12, tzinfo=UTC)
GIB = 1 << 30


def gpu(index: int, utilization: float, used_gib: int) -> GpuHealth:
    return GpuHealth(
        index=index,
        uuid=f"GPU-{index}",
        name="NVIDIA H200",
        utilization=utilization,
        memory_used=used_gib * GIB,
        memory_total=100 * GIB,
        temperature=40.0,
        power=100.0,
        ecc_uncorrected=0,
    )


def beat(node: str, at: datetime, *, util: float, cpu: float = 5.0) -> HealthEntry:
    return make_heartbeat(
        node,
        gpu_count=2,
        cpu_percent=cpu,
        gpus=[gpu(0, 1.0, 1), gpu(1, util, int(util))],
        ts=at.timestamp(),
    )


def ingest(*entries: HealthEntry) -> None:
    with transaction.atomic():
        batch_apply(Batch(health=list(entries)))


@pytest.fixture
def step(settings: Settings) -> int:
    settings.TRAINYARD_NODE_SAMPLE_S = 10
    return 10


def test_the_timeline_comes_from_the_heartbeat_history_of_the_jobs_gpus(
    owner: User, client_for: TokenClient, step: int
) -> None:
    gpu_node = make_node("gpu-a", gpu_count=2)
    make_node("gpu-b", gpu_count=2)  # beating too, but the job is not on it
    job = make_job(owner, state="running", gpus_per_node=1)
    attempt = make_attempt(job, nodes=[gpu_node])
    Placement.objects.filter(attempt=attempt).update(
        gpus=1, gpu_indices=[1], started_at=START, finished_at=START + timedelta(seconds=60)
    )
    # Every 2 s for 2 minutes, on both nodes: the history keeps one reading per 10 s step.
    for i in range(60):
        at = START - timedelta(seconds=30) + timedelta(seconds=2 * i)
        ingest(beat("gpu-a", at, util=float(i)), beat("gpu-b", at, util=7.0))
    assert NodeSample.objects.filter(node=gpu_node, gpu=1).count() == 12
    # A re-delivered heartbeat changes nothing.
    ingest(beat("gpu-a", START, util=100.0))
    assert NodeSample.objects.get(node=gpu_node, gpu=1, at=START).utilization == 15.0

    response = client_for(owner).get(reverse("jobs-api:timeline", kwargs={"job_id": job.pk}))

    assert response.status_code == 200, response.content
    timeline = response.json()
    assert [(s["node"], s["device"], s["attempt"]) for s in timeline["series"]] == [
        ("gpu-a", "gpu1", attempt.pk)
    ]
    series = timeline["series"][0]
    # The placement's minute: readings at START, +10 s, ..., +60 s, each the first of its step.
    assert series["t"] == [(START + timedelta(seconds=s)).timestamp() for s in range(0, 61, 10)]
    assert series["utilization"] == [15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0]
    assert series["memory"] == pytest.approx([15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0], rel=0.1)
    assert timeline["start"] == START.timestamp()


def test_a_cpu_jobs_timeline_is_its_nodes_host(
    owner: User, client_for: TokenClient, step: int
) -> None:
    node = make_node("cpu-a")
    job = make_job(owner, state="running")
    attempt = make_attempt(job, nodes=[node])
    Placement.objects.filter(attempt=attempt).update(started_at=START)
    ingest(beat("cpu-a", START + timedelta(seconds=5), util=50.0, cpu=42.0))

    timeline = client_for(owner).get(reverse("jobs-api:timeline", kwargs={"job_id": job.pk}))

    [series] = timeline.json()["series"]
    assert series["device"] == "cpu" and series["utilization"] == [42.0]


def test_the_history_is_pruned_after_its_retention(
    owner: User, settings: Settings, step: int
) -> None:
    settings.TRAINYARD_NODE_SAMPLE_RETENTION_H = 1
    make_node("old")
    now = datetime.now(tz=UTC)
    ingest(beat("old", now - timedelta(hours=2), util=1.0), beat("old", now, util=2.0))
    assert node_samples_prune() == 3  # the host and two GPUs of the old heartbeat
    assert NodeSample.objects.filter(node__name="old").count() == 3
