"""Idle GPU jobs, as a table: GPU utilisation read by a stand-in for NVML behind the node's
probe seam (`workers.health.GpuProbe`, which `NvmlProbe` implements in production), sent as
the node's real heartbeat snapshot and stored by the real heartbeat service; then the watch
pass decides, one sample per tick."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.dispatch import receiver
from django.utils import timezone

from portal.cluster.models import Node
from portal.cluster.services import node_heartbeat
from portal.jobs.models import Job, Placement
from portal.jobs.signals import job_flagged
from portal.jobs.watch import jobs_watch
from tests.factories import make_attempt, make_job, make_node
from workers.health import NodeIdentity, health_snapshot
from workers.messages import GpuHealth

pytestmark = pytest.mark.django_db(transaction=True)

TICK = timedelta(seconds=60)


class ReadGpus:
    """Stands in for NVML (this machine has no GPU): each GPU reads the given utilisation."""

    def __init__(self, utilisation: tuple[float | None, ...]) -> None:
        self.utilisation = utilisation

    def gpus(self) -> list[GpuHealth]:
        return [
            GpuHealth(
                index=i,
                uuid=f"GPU-{i:08x}-fake",
                name="NVIDIA H100 80GB HBM3",
                utilization=value,
                memory_used=2**30,
                memory_total=80 * 2**30,
                temperature=40.0,
                power=80.0,
                ecc_uncorrected=0,
            )
            for i, value in enumerate(self.utilisation)
        ]


@dataclass(frozen=True)
class Row:
    name: str
    # Per tick, each of the job's two GPUs' utilisation (None: the sensor reads nothing).
    ticks: list[tuple[float | None, float | None]]
    # The flag after each tick.
    idle: list[bool]
    policy: str = "5:120:3:keep"  # percent:window_s:min_samples:stop|keep
    pool: str = "default"
    pools: tuple[str, ...] = ()
    stopped: bool = False


LOW, HIGH = (1.0, 2.0), (1.0, 90.0)
ROWS = [
    Row("idle for the window and the samples", [LOW] * 4, [False, False, True, True]),
    Row("one busy sample ends the streak", [LOW, LOW, HIGH, LOW, LOW], [False] * 5),
    Row("one busy GPU of two is not idle", [HIGH] * 4, [False] * 4),
    Row(
        "a window longer than the samples",
        [LOW] * 6,
        [False] * 5 + [True],
        policy="5:300:2:keep",
    ),
    Row(
        "fewer samples than the minimum, however long",
        [LOW] * 3,
        [False] * 3,
        policy="5:60:4:keep",
    ),
    Row(
        "a sensor that reads nothing is no sample",
        [LOW, (None, 1.0), LOW, LOW],
        [False, False, False, True],
    ),
    Row(
        "the flag clears when the GPUs work again",
        [LOW, LOW, LOW, HIGH],
        [False, False, True, False],
    ),
    Row(
        "the pool's own policy wins",
        [LOW] * 3,
        [False, True, True],
        pool="batch",
        pools=("batch=5:60:2:keep",),
    ),
    Row(
        "a policy that stops idle jobs",
        [LOW] * 3,
        [False, False, True],
        policy="5:120:3:stop",
        stopped=True,
    ),
]


def _policy(text: str) -> dict[str, Any]:
    percent, window, samples, action = text.split(":")
    return {
        "percent": float(percent),
        "window_s": float(window),
        "min_samples": int(samples),
        "stop": action == "stop",
    }


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_idle_gpu_jobs(row: Row, owner: User, settings: Any, tmp_path: Path) -> None:
    settings.TRAINYARD_IDLE_POLICY = _policy(row.policy)
    settings.TRAINYARD_IDLE_POOLS = {
        pool: _policy(policy) for pool, _, policy in (p.partition("=") for p in row.pools)
    }
    flags: list[tuple[int, str]] = []

    @receiver(job_flagged, weak=False)
    def hear(sender: type[Job], job: Job, flag: str, **kwargs: Any) -> None:
        flags.append((job.pk, flag))

    node = make_node("idle-gpu", gpu_count=2, pool=row.pool)
    job = make_job(owner, state=Job.State.RUNNING, gpus_per_node=2)
    attempt = make_attempt(job, nodes=[node])
    Placement.objects.filter(attempt=attempt).update(gpus=2, gpu_indices=[0, 1])
    identity = NodeIdentity(
        name=node.name,
        address="10.0.0.7",
        pool=row.pool,
        labels={},
        cpu_slots=4,
        state_dir=tmp_path,
    )
    start = timezone.now()
    seen: list[bool] = []
    try:
        for tick, utilisation in enumerate(row.ticks):
            now = start + tick * TICK
            node_heartbeat(entry=health_snapshot(identity, ReadGpus(utilisation)))
            # The heartbeat as stored at this tick's time: the pass skips a stale one.
            Node.objects.filter(pk=node.pk).update(last_heartbeat_at=now)
            jobs_watch(now=now)
            job.refresh_from_db()
            seen.append(job.idle_at is not None)
            if job.state != Job.State.RUNNING:
                break
    finally:
        job_flagged.disconnect(hear)
    assert seen == row.idle[: len(seen)]
    assert flags == ([(job.pk, "idle")] if any(row.idle) else [])
    if row.stopped:
        assert job.state == Job.State.CANCELLING
        assert "idle-GPU policy" in job.state_reason
    else:
        assert job.state == Job.State.RUNNING


def test_a_stale_heartbeat_is_no_sample(owner: User, settings: Any, tmp_path: Path) -> None:
    settings.TRAINYARD_IDLE_POLICY = _policy("5:0:1:keep")
    node = make_node("idle-stale", gpu_count=2)
    job = make_job(owner, state=Job.State.RUNNING, gpus_per_node=2)
    attempt = make_attempt(job, nodes=[node])
    Placement.objects.filter(attempt=attempt).update(gpus=2, gpu_indices=[0, 1])
    identity = NodeIdentity(
        name=node.name,
        address="10.0.0.7",
        pool="default",
        labels={},
        cpu_slots=4,
        state_dir=tmp_path,
    )
    node_heartbeat(entry=health_snapshot(identity, ReadGpus(LOW)))
    assert jobs_watch(now=timezone.now() + timedelta(minutes=5)).idle == []
    assert jobs_watch(now=timezone.now()).idle == [job.pk]
