"""Ship an attempt's telemetry spools to Redis: the launcher's half of the reporter.

The training ranks only append to files (`workers.spool`); this thread, in the launcher's
process (never the trainer's, so it competes with no training step for the GIL), tails them
every `poll_s` and turns what it finds into stream entries:

- a rank's `METRIC_TRAIN` / `METRIC_VAL` records become `MetricEntry`s on `<prefix>:metrics`;
- its `STATS` records are summed up per rank over about `stats_interval_s` into one
  `RankStatsEntry` on `<prefix>:ranks` (with the rank's GPU memory from NVML, through the
  same `GpuProbe` seam the health reporter uses);
- `events.jsonl` and `logs.jsonl` lines go out as they are, on `<prefix>:events` and
  `<prefix>:logs`.

A batch is converted once and kept until Redis takes it; the files' offsets move only then.
So while Redis is unreachable nothing is dropped and nothing waits in memory beyond one batch:
the spool on disk is the spill, and it replays in order when Redis returns.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from workers.health import GpuProbe
from workers.messages import AttemptSpec, MetricEntry, RankStatsEntry, encode
from workers.spool import (
    EVENTS_FILE,
    HAS_ACCURACY,
    LOGS_FILE,
    METRIC_TRAIN,
    METRIC_VAL,
    STATS,
    STEP,
    STEPS_GLOB,
    StepRecord,
    Tail,
    unpack_steps,
)

logger = logging.getLogger(__name__)


@dataclass
class _Window:
    """One rank's steps since its last `RankStatsEntry`."""

    local_rank: int
    started: float
    steps: int = 0
    time_s: float = 0.0
    samples: float = 0.0
    last_step: int = 0
    last_ts: float = 0.0


@dataclass
class _Source:
    tail: Tail
    kind: str  # "steps", or the stream the lines go to as they are
    max_bytes: int


class Shipper:
    """Tails one attempt's telemetry directory and ships it to Redis from a daemon thread."""

    def __init__(
        self,
        *,
        spec: AttemptSpec,
        directory: Path,
        redis_url: str,
        prefix: str,
        stream_maxlen: int,
        gpus: GpuProbe | None = None,
        stats_interval_s: float = 1.0,
        poll_s: float = 0.02,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        start: bool = True,
    ) -> None:
        self.spec = spec
        self.directory = directory
        self._redis_url = redis_url
        self._streams = {
            kind: f"{prefix}:{kind}" for kind in ("metrics", "ranks", "logs", "events")
        }
        self._maxlen = stream_maxlen
        self._gpus = gpus
        self._stats_interval_s = stats_interval_s
        self._poll_s = poll_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._sources: dict[Path, _Source] = {}
        self._unsent: list[tuple[str, bytes]] = []
        self._peeked: list[Tail] = []
        self._windows: dict[int, _Window] = {}
        self._client: redis.Redis | None = None
        self._closing = threading.Event()
        self._deadline: float | None = None
        self.sent = 0
        self.drained = False
        self._thread = threading.Thread(target=self._run, name="shipper", daemon=True)
        if start:
            self._thread.start()

    # ---- the pass ----------------------------------------------------------------------------

    def _discover(self) -> None:
        for path in self.directory.glob(STEPS_GLOB):
            if path not in self._sources:
                self._sources[path] = _Source(Tail(path, record_size=STEP.size), "steps", 72_000)
        for name, kind in ((EVENTS_FILE, "events"), (LOGS_FILE, "logs")):
            path = self.directory / name
            if path not in self._sources and path.exists():
                self._sources[path] = _Source(Tail(path), kind, 256 * 1024)

    def _gather(self) -> int:
        """Read what the spools hold into `_unsent`; returns how many bytes were read."""
        self._discover()
        read = 0
        for source in self._sources.values():
            data = source.tail.peek(source.max_bytes)
            if not data:
                continue
            read += len(data)
            self._peeked.append(source.tail)
            if source.kind == "steps":
                self._convert_steps(unpack_steps(data))
            else:
                stream = self._streams[source.kind]
                self._unsent.extend((stream, line) for line in data.splitlines() if line)
        return read

    def _convert_steps(self, records: list[StepRecord]) -> None:
        spec = self.spec
        for record in records:
            flags = record.flags
            if flags & (METRIC_TRAIN | METRIC_VAL):
                entry = MetricEntry(
                    job=spec.job_id,
                    attempt=spec.attempt_id,
                    seq=record.seq,
                    split="train" if flags & METRIC_TRAIN else "val",
                    step=record.step,
                    epoch=record.epoch,
                    loss=record.loss,
                    accuracy=record.accuracy if flags & HAS_ACCURACY else None,
                    ts=record.ts,
                )
                self._unsent.append((self._streams["metrics"], encode(entry)))
            if flags & STATS:
                window = self._windows.get(record.rank)
                if window is None:
                    window = _Window(local_rank=record.local_rank, started=record.ts)
                    self._windows[record.rank] = window
                window.steps += 1
                window.time_s += record.step_time_s
                window.samples += record.samples
                window.last_step = record.step
                window.last_ts = record.ts
                if record.ts - window.started >= self._stats_interval_s:
                    self._emit_window(record.rank, window)

    def _gpu_memory(self, local_rank: int) -> int | None:
        indices = self.spec.placement.gpu_indices
        if self._gpus is None or local_rank >= len(indices):
            return None
        wanted = indices[local_rank]
        for gpu in self._gpus.gpus():
            if gpu.index == wanted:
                return gpu.memory_used
        return None

    def _emit_window(self, rank: int, window: _Window) -> None:
        spec = self.spec
        entry = RankStatsEntry(
            job=spec.job_id,
            attempt=spec.attempt_id,
            node_rank=spec.placement.node_rank,
            rank=rank,
            local_rank=window.local_rank,
            step=window.last_step,
            steps=window.steps,
            step_time_s=window.time_s / window.steps,
            samples_per_s=window.samples / window.time_s if window.time_s > 0 else 0.0,
            gpu_memory_used=self._gpu_memory(window.local_rank),
            ts=window.last_ts,
        )
        self._unsent.append((self._streams["ranks"], encode(entry)))
        del self._windows[rank]

    def _flush_windows(self) -> None:
        for rank, window in list(self._windows.items()):
            self._emit_window(rank, window)

    def _connect(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self._redis_url, socket_connect_timeout=2.0, socket_timeout=5.0
            )
        return self._client

    def ship_once(self, *, final: bool = False) -> int:
        """Gather (unless a batch is still unsent) and send. Returns the entries sent plus the
        bytes read, so 0 means there was nothing to do. Raises `redis.RedisError`."""
        read = 0
        if not self._unsent:
            read = self._gather()
            if final and not read:
                self._flush_windows()
        if self._unsent:
            pipe = self._connect().pipeline(transaction=False)
            for stream, data in self._unsent:
                pipe.xadd(stream, {"data": data}, maxlen=self._maxlen, approximate=True)
            pipe.execute()
        sent = len(self._unsent)
        self.sent += sent
        self._unsent = []
        for tail in self._peeked:
            tail.commit()
        self._peeked = []
        return sent + read

    # ---- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._backoff_initial_s
        while True:
            closing = self._closing.is_set()
            try:
                done = self.ship_once(final=closing)
            except redis.RedisError as exc:
                now = time.monotonic()
                if closing and self._deadline is not None and now >= self._deadline:
                    logger.warning("giving up on shipping telemetry: %s", exc)
                    return
                logger.debug("redis unreachable (%s); telemetry waits in %s", exc, self.directory)
                wait = backoff
                if self._deadline is not None:
                    wait = max(0.0, min(wait, self._deadline - now))
                if closing:
                    time.sleep(wait)
                else:
                    self._closing.wait(wait)
                backoff = min(backoff * 2, self._backoff_max_s)
                continue
            backoff = self._backoff_initial_s
            if done:
                continue
            if closing:
                self.drained = True
                return
            self._closing.wait(self._poll_s)

    def close(self, timeout: float = 10.0) -> bool:
        """Ship everything the spools hold (within `timeout`) and stop. True if all went out."""
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout + 1.0)
        for source in self._sources.values():
            source.tail.close()
        if self._client is not None and not self._thread.is_alive():
            self._client.close()
        return self.drained


def drain(shipper: Shipper) -> None:
    """Ship everything now, in this thread (a shipper made with `start=False`)."""
    while shipper.ship_once(final=True):
        pass
    shipper.drained = True
