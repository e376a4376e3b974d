from __future__ import annotations

import threading

import msgspec
import redis

from tests.workers.conftest import Node
from tests.workers.support import entries, wait_for
from workers import attempts
from workers.health import HealthReporter, NodeIdentity, NvmlProbe
from workers.messages import GpuHealth


class FakeGpus:
    """Stands in for NVML: this machine has no GPU. Production passes `NvmlProbe`."""

    def gpus(self) -> list[GpuHealth]:
        return [
            GpuHealth(
                index=i,
                uuid=f"GPU-{i:08x}-fake",
                name="NVIDIA H100 80GB HBM3",
                utilization=87.0,
                memory_used=40 * 2**30,
                memory_total=80 * 2**30,
                temperature=64.0,
                power=512.5,
                ecc_uncorrected=0,
            )
            for i in range(2)
        ]


def test_it_sends_heartbeats_with_the_probes_gpus(
    node: Node, redis_client: redis.Redis, redis_url: str
):
    # An attempt whose launcher is long gone (its pid beyond any live one) is not running.
    stale = attempts.attempt_dir(node.state_dir, 41)
    stale.mkdir(parents=True)
    attempts.write_pid(stale, 2**22 + 12345)
    # Claimed: a spec on disk and no exit yet (its launcher is gone: the sweep's business).
    for attempt_id, finished in ((42, False), (43, True)):
        directory = attempts.attempt_dir(node.state_dir, attempt_id)
        directory.mkdir()
        (directory / "spec.json").write_text("{}")
        if finished:
            (directory / "exit.json").write_text("{}")

    stop = threading.Event()
    reporter = HealthReporter(
        node=NodeIdentity(
            name=node.name,
            address="10.0.0.7",
            pool="gpu",
            labels={"zone": "a"},
            cpu_slots=6,
            state_dir=node.state_dir,
        ),
        redis_url=redis_url,
        stream=node.stream("health"),
        probe=FakeGpus(),
        interval_s=0.05,
        stop=stop,
    )
    thread = reporter.start()
    try:
        beats = wait_for(
            lambda: entries(redis_client, node.stream("health"))[:2],
            timeout=10,
            what="two heartbeats",
            interval=0.05,
        )
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    beat = beats[0]
    assert beat["node"] == node.name
    assert beat["address"] == "10.0.0.7"
    assert beat["cpu_slots"] == 6
    assert beat["gpu_count"] == 2
    assert beat["gpus"] == msgspec.to_builtins(FakeGpus().gpus())
    assert beat["running_attempts"] == []
    assert beat["claimed_attempts"] == [42]
    assert 0 < beat["memory_used"] <= beat["memory_total"]
    assert 0 < beat["disk_used"] <= beat["disk_total"]
    assert beat["hostname"]


def test_nvml_probe_reports_no_gpus_where_nvml_cannot_start():
    probe = NvmlProbe()
    try:
        gpus = probe.gpus()
    finally:
        probe.close()
    # This machine has no NVIDIA driver; on a GPU node the same call lists the devices.
    assert isinstance(gpus, list)
    assert all(isinstance(g, GpuHealth) for g in gpus)
