"""On a machine with NVIDIA GPUs: the whole stack trains over NCCL, gives concurrent jobs
different GPUs, and shows the GPU health the nodes page shows.

`bench/gpu_check.sh` runs exactly this module (with `-s`, so the figures print) and its output
goes into bench/RESULTS.md. On a machine without an NVIDIA GPU (every developer machine and CI
here) each test is skipped and says why: there is nothing to fake that would prove the NCCL path
or NVML; the scheduler's GPU assignment itself is tested with a probe in
tests/jobs/test_gpu_assignment.py.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx
import pytest

from portal.accounts.services import api_token_create
from portal.jobs.models import Attempt, Job, LogLine, MetricPoint, Placement
from tests.e2e.conftest import Stack, wait_for
from tests.e2e.test_iris_end_to_end import _iris_job, _ready_cluster, _submit
from tests.factories import make_user
from workers.health import NvmlProbe

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def report(line: str) -> None:
    """A figure for bench/RESULTS.md (gpu_check.sh runs pytest with -s, so it is shown)."""
    sys.stdout.write(line + "\n")


def _gpus() -> int:
    probe = NvmlProbe()
    try:
        return len(probe.gpus())
    finally:
        probe.close()


@pytest.fixture(scope="session")
def gpus() -> int:
    """The node's GPUs; asked for before the stack, so a GPU-less host skips without one."""
    count = _gpus()
    if count == 0:
        pytest.skip("no NVIDIA GPU here (NVML reports none): run bench/gpu_check.sh on a GPU host")
    return count


def _gpu_job(stack: Stack, token: str, *, epochs: int, name: str) -> dict[str, Any]:
    _token, dataset, model = _ready_cluster(stack)
    body = _iris_job(dataset, model, epochs=epochs)
    body["name"] = name
    body["resources"] = {"nodes": 1, "gpus_per_node": 1}
    return _submit(stack, token, body)


def _finish(stack: Stack, job_id: int, timeout: float = 300) -> Job:
    try:
        wait_for(lambda: Job.objects.get(pk=job_id).is_terminal, timeout=timeout, what="the job")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from exc
    return Job.objects.get(pk=job_id)


def test_iris_trains_on_one_gpu_over_nccl(gpus: int, stack: Stack) -> None:
    token = api_token_create(user=make_user("gpu-researcher"), name="gpu").plaintext
    started = time.monotonic()
    job = _gpu_job(stack, token, epochs=40, name="iris on a GPU")
    finished = _finish(stack, job["id"])
    assert finished.state == Job.State.SUCCEEDED, f"{finished.state_reason}\n{stack.logs()}"
    attempt = Attempt.objects.get(job=finished)
    [placement] = Placement.objects.filter(attempt=attempt)
    lines = list(LogLine.objects.filter(attempt=attempt).values_list("line", flat=True))
    assert any("training on cuda:0" in line for line in lines), lines[-20:]
    val = MetricPoint.objects.filter(attempt=attempt, split="val").order_by("-seq").first()
    assert val is not None and val.accuracy is not None and val.accuracy >= 0.9
    report(
        f"\nGPU check: iris on GPU {placement.gpu_indices} (NCCL) succeeded in "
        f"{time.monotonic() - started:.1f} s, validation accuracy {val.accuracy:.3f}"
    )


def test_two_one_gpu_jobs_at_once_get_different_gpus(gpus: int, stack: Stack) -> None:
    if gpus < 2:
        pytest.skip(f"needs 2 GPUs on the node, it has {gpus}")
    token = api_token_create(user=make_user("gpu-pair"), name="gpu").plaintext
    jobs = [_gpu_job(stack, token, epochs=200, name=f"gpu pair {i}") for i in range(2)]
    wait_for(
        lambda: Job.objects.filter(pk__in=[j["id"] for j in jobs], state="running").count() == 2,
        timeout=120,
        what="both jobs to run at once",
    )
    held = [
        Placement.objects.get(attempt__job_id=j["id"], attempt__state="running").gpu_indices
        for j in jobs
    ]
    assert len(held[0]) == len(held[1]) == 1 and held[0] != held[1], held
    for j in jobs:
        assert _finish(stack, j["id"]).state == Job.State.SUCCEEDED
    report(f"\nGPU check: two 1-GPU jobs ran at once on GPUs {held[0]} and {held[1]}")


def test_the_nodes_api_shows_each_gpus_health(gpus: int, stack: Stack) -> None:
    admin = make_user("gpu-admin", is_staff=True)
    token = api_token_create(user=admin, name="gpu").plaintext
    wait_for(
        lambda: len(_node(stack, token)["health"].get("gpus", [])) == gpus,
        timeout=30,
        what="a heartbeat with every GPU",
    )
    node = _node(stack, token)
    assert node["gpu_count"] == gpus and node["gpu_model"]
    report(f"\nGPU check: node {node['name']} ({node['status']}), {gpus} x {node['gpu_model']}")
    for gpu in node["health"]["gpus"]:
        assert gpu["uuid"] and gpu["memory_total"] > 0
        report(
            f"  GPU {gpu['index']} {gpu['uuid']}: {gpu['utilization']}% util, "
            f"{gpu['memory_used'] / 2**30:.1f}/{gpu['memory_total'] / 2**30:.1f} GiB, "
            f"{gpu['temperature']} C, {gpu['power']} W, ECC uncorrected {gpu['ecc_uncorrected']}"
        )


def _node(stack: Stack, token: str) -> dict[str, Any]:
    response = httpx.get(
        f"{stack.base_url}/api/v1/nodes/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    node: dict[str, Any] = next(
        n for n in response.json()["results"] if n["name"] == stack.node_name
    )
    return node
