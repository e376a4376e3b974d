"""Telemetry spools: append-only files the training ranks write and the launcher ships.

A training step must not pay for Redis, for JSON, or for a thread that wants the GIL. So a rank
reports a step by packing one fixed-size record (`STEP`, 72 bytes) and handing it to the kernel
with one `os.write` on an `O_APPEND` file: about a microsecond or two, no lock, no thread, and
the record is safe in the page cache even if the rank crashes a moment later. The launcher, a
separate process, tails the files (`Tail`) and ships what they hold to Redis
(`workers.shipper`). The file is also the spill: while Redis is unreachable the launcher simply
does not advance its offset, so entries wait on local disk, in order, in bounded memory, and
go out when Redis returns; the training loop never notices.

Layout, under the attempt's telemetry directory (`TRAINYARD_TELEMETRY_DIR`, set by the launcher):

    rank-<rank>.steps    every rank: one STEP record per training step (and per validation)
    events.jsonl         the reporting rank: one `encode(entry)` per line (checkpoint.saved)
    logs.jsonl           the launcher: one `encode(LogEntry)` per line, up to the job's cap
"""

from __future__ import annotations

import math
import os
import struct
import time
from pathlib import Path
from typing import BinaryIO, NamedTuple

# flags, pad, local_rank, rank, seq, step, epoch, ts, loss, accuracy, step_time_s, samples
STEP = struct.Struct("<BxHiqqqddddd")
# What a STEP record carries (bit flags).
METRIC_TRAIN = 1  # the reporting rank's all-reduced training point: seq, loss, accuracy
METRIC_VAL = 2  # the reporting rank's validation point
STATS = 4  # this rank's own step: step_time_s and samples are its figures
HAS_ACCURACY = 8

STEPS_GLOB = "rank-*.steps"
EVENTS_FILE = "events.jsonl"
LOGS_FILE = "logs.jsonl"


def steps_file(directory: Path, rank: int) -> Path:
    return directory / f"rank-{int(rank)}.steps"


class StepRecord(NamedTuple):
    flags: int
    local_rank: int
    rank: int
    seq: int
    step: int
    epoch: int
    ts: float
    loss: float
    accuracy: float  # NaN when the record has none
    step_time_s: float
    samples: float


class Appender:
    """One append-only spool file; every `write` is one `os.write` (no buffer, no thread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, data: bytes) -> None:
        if self._fd is not None:
            os.write(self._fd, data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StepWriter(Appender):
    """A rank's step records. `step()` is the hot path: a pack and a write, a few microseconds."""

    def __init__(self, directory: Path, *, rank: int, local_rank: int) -> None:
        super().__init__(steps_file(directory, rank))
        self._rank = rank
        self._local_rank = local_rank
        self._pack = STEP.pack

    def step(
        self,
        *,
        flags: int,
        seq: int = 0,
        step: int,
        epoch: int,
        loss: float = math.nan,
        accuracy: float | None = None,
        step_time_s: float = 0.0,
        samples: float = 0.0,
    ) -> None:
        if accuracy is not None:
            flags |= HAS_ACCURACY
        else:
            accuracy = math.nan
        self.write(
            self._pack(
                flags,
                self._local_rank,
                self._rank,
                seq,
                step,
                epoch,
                time.time(),
                loss,
                accuracy,
                step_time_s,
                samples,
            )
        )


def unpack_steps(data: bytes) -> list[StepRecord]:
    return [StepRecord._make(fields) for fields in STEP.iter_unpack(data)]


class Tail:
    """Reads a spool from an offset in whole units (fixed-size records, or lines), without
    moving past them until `commit`: a batch that failed to ship is read again, not lost."""

    def __init__(self, path: Path, *, record_size: int | None = None) -> None:
        self.path = path
        self.record_size = record_size
        self.offset = 0
        self._pending_end = 0
        self._handle: BinaryIO | None = None

    def peek(self, max_bytes: int) -> bytes:
        """Whole units after the offset, at most about `max_bytes` (at least one unit)."""
        if self._handle is None:
            try:
                self._handle = self.path.open("rb")
            except FileNotFoundError:
                return b""
        handle = self._handle
        handle.seek(self.offset)
        data = handle.read(max_bytes)
        if self.record_size is not None:
            data = data[: len(data) - len(data) % self.record_size]
        elif data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n")
            if cut < 0:
                # One line longer than max_bytes: read on to its end (a writer's line is whole
                # once its newline is there).
                data += handle.readline()
                cut = data.rfind(b"\n")
            data = data[: cut + 1]
        self._pending_end = self.offset + len(data)
        return data

    def commit(self) -> None:
        """Everything the last `peek` returned is shipped; read after it from now on."""
        self.offset = self._pending_end

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
