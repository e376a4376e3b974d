"""Placements hold specific GPUs and CPU slots: never shared, carried to the node, enforced by
the launcher's environment; and jobs name the pool, GPU model and labels they need.

The GPUs come from the node's own heartbeat, built by the health reporter through the
`GpuProbe` seam (this machine has no GPU, so a probe reports four).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from portal.cluster.models import Node
from portal.cluster.services import node_heartbeat
from portal.jobs.models import Job
from portal.jobs.scheduling import schedule_pass
from tests.conftest import Broker
from tests.jobs.helpers import cpu_request, node, placements, submit
from workers.health import NodeIdentity, health_snapshot
from workers.launcher import LaunchSettings, cpu_affinity, torchrun_env
from workers.messages import RUN_ATTEMPT_TASK, AttemptSpec, GpuHealth, node_queue


class FourGpus:
    """Stands in for NVML on this GPU-less machine, as production's `NvmlProbe` would answer."""

    def __init__(self, name: str = "NVIDIA H200", ecc: int = 0) -> None:
        self.name, self.ecc = name, ecc

    def gpus(self) -> list[GpuHealth]:
        return [
            GpuHealth(
                index=index,
                uuid=f"GPU-{index:04d}-test",
                name=self.name,
                utilization=0.0,
                memory_used=0,
                memory_total=141 * 2**30,
                temperature=40.0,
                power=90.0,
                ecc_uncorrected=self.ecc if index == 3 else 0,
            )
            for index in range(4)
        ]


def gpu_node(
    tmp_path: Path,
    *,
    pool: str = "default",
    labels: dict[str, str] | None = None,
    probe: FourGpus | None = None,
) -> Node:
    """A node registered by its heartbeat, reporting four GPUs."""
    name = f"gpu-{uuid.uuid4().hex[:8]}"
    identity = NodeIdentity(
        name=name,
        address="10.0.0.9",
        pool=pool,
        labels=labels or {},
        cpu_slots=8,
        state_dir=tmp_path / name,
    )
    return node_heartbeat(entry=health_snapshot(identity, probe or FourGpus()))


def gpu_request(gpus: int, **resources: object) -> dict[str, object]:
    return {"resources": {"gpus_per_node": gpus, **resources}}


def specs(broker: Broker, worker: Node) -> list[AttemptSpec]:
    return [
        AttemptSpec.from_json(task.args[0])
        for task in broker.take(node_queue(worker.name))
        if task.name == RUN_ATTEMPT_TASK
    ]


def launch_env(spec: AttemptSpec, tmp_path: Path) -> dict[str, str]:
    settings = LaunchSettings(
        redis_url="redis://127.0.0.1:1/0",
        stream_prefix="t",
        state_dir=tmp_path,
        cancel_grace_s=1.0,
        ifname=None,
        stream_maxlen=1000,
        address="10.0.0.9",
        rendezvous_timeout_s=5.0,
        log_max_bytes=1 << 20,
        log_max_lines=10_000,
        stats_interval_s=1.0,
    )
    return torchrun_env(spec, settings, {})


def test_two_2_gpu_jobs_get_disjoint_gpus_the_launcher_enforces_and_a_third_waits(
    owner, iris, mlp, broker, tmp_path, django_capture_on_commit_callbacks
):
    worker = gpu_node(tmp_path)
    assert (worker.gpu_count, worker.gpu_model) == (4, "NVIDIA H200")
    first, second, third = (submit(owner, iris, mlp, **gpu_request(2)) for _ in range(3))

    with django_capture_on_commit_callbacks(execute=True):
        assert schedule_pass() == 2

    held = [placements(job.attempts.get())[0].gpu_indices for job in (first, second)]
    assert sorted(held) == [[0, 1], [2, 3]]
    sent = {spec.job_id: spec for spec in specs(broker, worker)}
    visible = {
        job.pk: launch_env(sent[job.pk], tmp_path)["CUDA_VISIBLE_DEVICES"]
        for job in (first, second)
    }
    assert sorted(visible.values()) == ["0,1", "2,3"]
    assert sent[first.pk].placement.device == "cuda"
    third.refresh_from_db()
    assert third.state == Job.State.QUEUED
    assert third.state_reason.startswith(
        "Waiting for capacity: needs 1 node with 2 GPUs; 0 of them have 2 free GPUs now."
    )


def test_a_freed_share_hands_its_gpus_to_the_next_job(owner, iris, mlp, tmp_path):
    worker = gpu_node(tmp_path)
    first = submit(owner, iris, mlp, **gpu_request(3))
    assert schedule_pass() == 1
    placement = placements(first.attempts.get())[0]
    placement.finished_at = placement.attempt.created_at
    placement.save(update_fields=["finished_at"])
    second = submit(owner, iris, mlp, **gpu_request(4))
    assert schedule_pass() == 1
    assert placements(second.attempts.get())[0].gpu_indices == [0, 1, 2, 3]
    assert placements(second.attempts.get())[0].node == worker


def test_cpu_jobs_hold_disjoint_slots_pinned_to_different_cpus(owner, iris, mlp, broker):
    worker = node(cpu_slots=2)
    jobs = [submit(owner, iris, mlp, **cpu_request(procs=1)) for _ in range(2)]
    assert schedule_pass() == 2
    slots = sorted(placements(job.attempts.get())[0].cpu_indices for job in jobs)
    assert slots == [[0], [1]]
    for job in jobs:
        assert placements(job.attempts.get())[0].gpu_indices == []
    # The launcher maps slot i to the i-th CPU this node may use (wrapping on small hosts).
    allowed = sorted(os.sched_getaffinity(0))
    assert cpu_affinity([0]) == {allowed[0]}
    assert cpu_affinity([1]) == {allowed[1 % len(allowed)]}
    assert cpu_affinity([]) is None
    broker.take(node_queue(worker.name))


def test_a_job_runs_only_on_nodes_of_its_pool_gpu_model_and_labels(owner, iris, mlp, tmp_path):
    plain = gpu_node(tmp_path)
    wanted = gpu_node(tmp_path, pool="train", labels={"zone": "b"})
    job = submit(
        owner, iris, mlp, **gpu_request(1, pool="train", gpu_model="h200", labels={"zone": "b"})
    )
    assert schedule_pass() == 1
    assert placements(job.attempts.get())[0].node == wanted
    elsewhere = submit(owner, iris, mlp, **gpu_request(4, pool="train", labels={"zone": "b"}))
    assert schedule_pass() == 0
    elsewhere.refresh_from_db()
    assert elsewhere.state_reason.startswith(
        "Waiting for capacity: needs 1 node in pool train labelled zone=b with 4 GPUs; "
    )
    assert plain.placements.count() == 0


@pytest.mark.parametrize(
    ("resources", "field", "message"),
    [
        ({"pool": "nowhere"}, "resources.pool", "No node is in pool nowhere; pools: default."),
        (
            {"gpu_model": "B200"},
            "resources.gpu_model",
            "No node has B200 GPUs; models: NVIDIA H200.",
        ),
        ({"labels": {"zone": "z"}}, "resources.labels", "No node carries the labels zone=z."),
    ],
)
def test_a_constraint_no_node_meets_is_refused_at_submit(
    owner, iris, mlp, tmp_path, resources, field, message
):
    gpu_node(tmp_path)
    with pytest.raises(ValidationError) as refused:
        submit(owner, iris, mlp, **gpu_request(1, **resources))
    assert refused.value.message_dict == {field: [message]}


def test_a_gpu_with_uncorrectable_errors_keeps_new_work_off_its_node(owner, iris, mlp, tmp_path):
    sick = gpu_node(tmp_path, probe=FourGpus(ecc=2))
    assert sick.unhealthy_reason == "GPU 3 has 2 uncorrectable ECC errors"
    assert not sick.is_schedulable
    assert sick.events.get().kind == "unhealthy"
    job = submit(owner, iris, mlp, **gpu_request(1))
    assert schedule_pass() == 0
    job.refresh_from_db()
    assert f"{sick.name} is unhealthy" in job.state_reason
