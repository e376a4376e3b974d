"""The node's heartbeat: every TRAINYARD_HEARTBEAT_S seconds, one `HealthEntry` to Redis.

The portal marks a node offline when heartbeats stop, so this loop must outlive Redis outages:
it retries with backoff and never gives up until told to stop. A heartbeat is only worth
something when fresh, so there is no buffer: one that cannot be sent is skipped.

GPUs are read through NVML behind the `GpuProbe` seam: production uses `NvmlProbe`, and a test
on a machine without a GPU passes a probe of its own.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil
import redis

from workers import attempts, config
from workers.messages import GpuHealth, HealthEntry, encode, stream_name

logger = logging.getLogger(__name__)


class GpuProbe(Protocol):
    def gpus(self) -> list[GpuHealth]: ...


class NvmlProbe:
    """Per-GPU utilisation, memory, temperature and power from NVML; [] where there is none."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._failed = False

    def _init(self) -> Any:
        if self._nvml is None and not self._failed:
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except Exception as exc:  # a CPU node: no driver, no library, or no devices
                logger.info("NVML unavailable (%s); reporting no GPUs", exc)
                self._failed = True
        return self._nvml

    def gpus(self) -> list[GpuHealth]:
        nvml = self._init()
        if nvml is None:
            return []
        try:
            return [self._gpu(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
        except nvml.NVMLError as exc:
            logger.warning("NVML query failed: %s", exc)
            return []

    @staticmethod
    def _gpu(nvml: Any, index: int) -> GpuHealth:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        temperature: float | None = None
        power: float | None = None
        utilization = 0.0
        # Some boards (and MIG slices) do not support every query; report what they do.
        with contextlib.suppress(nvml.NVMLError):
            utilization = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        with contextlib.suppress(nvml.NVMLError):
            temperature = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        with contextlib.suppress(nvml.NVMLError):
            power = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # milliwatts
        uuid = ""
        with contextlib.suppress(nvml.NVMLError):
            raw_uuid = nvml.nvmlDeviceGetUUID(handle)
            uuid = raw_uuid.decode() if isinstance(raw_uuid, bytes) else str(raw_uuid)
        ecc_uncorrected: int | None = None
        # Boards without ECC (or with it disabled) answer NOT_SUPPORTED: None, not 0.
        with contextlib.suppress(nvml.NVMLError):
            ecc_uncorrected = int(
                nvml.nvmlDeviceGetTotalEccErrors(
                    handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC
                )
            )
        return GpuHealth(
            index=index,
            uuid=uuid,
            name=name.decode() if isinstance(name, bytes) else str(name),
            utilization=utilization,
            memory_used=int(memory.used),
            memory_total=int(memory.total),
            temperature=temperature,
            power=power,
            ecc_uncorrected=ecc_uncorrected,
        )

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None


@dataclass(frozen=True)
class NodeIdentity:
    name: str
    address: str
    pool: str
    labels: dict[str, str]
    cpu_slots: int
    state_dir: Path

    @classmethod
    def from_env(cls, name: str) -> NodeIdentity:
        return cls(
            name=config.validate_node_name(name),
            address=config.node_address(),
            pool=config.node_pool(),
            labels=config.node_labels(),
            cpu_slots=config.node_cpu_slots(),
            state_dir=config.node_state_dir(name),
        )


def health_snapshot(node: NodeIdentity, probe: GpuProbe) -> HealthEntry:
    node.state_dir.mkdir(parents=True, exist_ok=True)
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(node.state_dir))
    gpus = probe.gpus()
    return HealthEntry(
        node=node.name,
        hostname=socket.gethostname(),
        address=node.address,
        pool=node.pool,
        labels=dict(node.labels),
        cpu_slots=node.cpu_slots,
        gpu_count=len(gpus),
        # Since the previous call: the heartbeat interval, once the loop is running.
        cpu_percent=float(psutil.cpu_percent(interval=None)),
        memory_used=int(memory.total - memory.available),
        memory_total=int(memory.total),
        disk_used=int(disk.used),
        disk_total=int(disk.total),
        gpus=gpus,
        running_attempts=attempts.running_attempts(node.state_dir),
        claimed_attempts=attempts.claimed_attempts(node.state_dir),
        ts=time.time(),
    )


class HealthReporter:
    """Sends a heartbeat every `interval_s` until `stop` is set; run it in a thread."""

    def __init__(
        self,
        *,
        node: NodeIdentity,
        redis_url: str,
        stream: str,
        probe: GpuProbe,
        interval_s: float,
        stream_maxlen: int = 100_000,
        stop: threading.Event | None = None,
    ) -> None:
        self.node = node
        self.stream = stream
        self.probe = probe
        self.interval_s = interval_s
        self.stop = stop or threading.Event()
        self._stream_maxlen = stream_maxlen
        self._redis_url = redis_url
        self.sent = 0

    @classmethod
    def from_env(
        cls, name: str, *, probe: GpuProbe, stop: threading.Event | None = None
    ) -> HealthReporter:
        return cls(
            node=NodeIdentity.from_env(name),
            redis_url=config.redis_url(),
            stream=stream_name(config.stream_prefix(), "health"),
            probe=probe,
            interval_s=config.heartbeat_s(),
            stream_maxlen=config.stream_maxlen(),
            stop=stop,
        )

    def run(self) -> None:
        client = redis.Redis.from_url(
            self._redis_url, socket_connect_timeout=2.0, socket_timeout=5.0
        )
        psutil.cpu_percent(interval=None)  # the first reading is meaningless; prime it
        initial_backoff = min(0.5, self.interval_s)
        backoff = initial_backoff
        try:
            while not self.stop.is_set():
                wait = self.interval_s
                try:
                    entry = health_snapshot(self.node, self.probe)
                    client.xadd(
                        self.stream,
                        {"data": encode(entry)},
                        maxlen=self._stream_maxlen,
                        approximate=True,
                    )
                    self.sent += 1
                    backoff = initial_backoff
                except redis.RedisError as exc:
                    logger.warning("heartbeat not sent (%s); retrying in %.1fs", exc, backoff)
                    wait = backoff
                    backoff = min(backoff * 2, max(self.interval_s, 5.0))
                except Exception:
                    # A heartbeat thread that dies makes a healthy node look offline.
                    logger.exception("heartbeat failed")
                self.stop.wait(wait)
        finally:
            client.close()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="health", daemon=True)
        thread.start()
        return thread
