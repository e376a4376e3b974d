"""The ingest loop: Redis Streams in, PostgreSQL batches, channel-layer events out.

One `Ingestor` is one consumer in the consumer group "ingest" on the five telemetry streams.
Any number of them may run at once, each under its own consumer name: the group shares the
entries out, every write is idempotent, and readers page logs by `(attempt, node_rank, seq)`
rather than by insert order, so batches may commit in any order.
Delivery is at least once: an entry is acknowledged only after the transaction that stored it
commits, and everything `batch_apply` does is idempotent, so a crash at any point costs a
re-delivery, never a loss or a duplicate row.

Reading order on each pass:

1. every `claim_every_s`, XAUTOCLAIM entries that another consumer took and has not
   acknowledged for `claim_idle_ms` (it died), and trim entries every group has acknowledged;
2. our own pending entries (`XREADGROUP ... 0`) while there are any: after a restart, after
   a claim, and after a failed batch, which is retried from Redis rather than from memory;
3. new entries (`XREADGROUP ... >`), blocking for up to `block_ms`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
    transaction,
)

from portal.jobs import events
from portal.lib.streams import GROUP, parse_stream_id
from portal.ops.ingest.apply import Applied, Batch, batch_apply
from portal.ops.ingest.entries import KINDS, Kind, MalformedEntry, entry_parse
from workers.messages import stream_name

logger = logging.getLogger(__name__)

# Connection-level database failures: the next try may well succeed, so never give up on them.
_TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
_REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)


@dataclass(frozen=True)
class IngestConfig:
    redis_url: str
    prefix: str
    consumer: str
    # Entries per stream per read. A read takes what is there, so a large batch costs nothing
    # when the streams are short, and under a backlog it spreads one commit (an fsync), one
    # fencing query and one fan-out over more points (bench/RESULTS.md).
    batch: int = 2000
    block_ms: int = 1000
    claim_idle_ms: int = 60_000
    claim_every_s: float = 30.0
    # First wait after a failed batch or a lost Redis connection; doubles up to the maximum.
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    # Failures of the same batch (not connection failures) before its entries are tried one
    # at a time, and any entry that still fails alone is moved to the dead-letter stream.
    isolate_after: int = 3
    dead_letter_maxlen: int = 10_000

    @classmethod
    def from_settings(cls, **overrides: Any) -> IngestConfig:
        values: dict[str, Any] = {
            "redis_url": settings.REDIS_URL,
            "prefix": settings.TRAINYARD_STREAM_PREFIX,
            # Stable across restarts, so a restarted ingest finds its own pending entries.
            "consumer": socket.gethostname(),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class BatchFailed(Exception):
    """A batch was rolled back and not acknowledged; it will be read again from Redis."""


class _RolledBack(Exception):
    """`_commit` failed before its transaction committed; `__cause__` says why."""


def _commit(batch: Batch) -> Applied:
    """Apply `batch` in one transaction. Raises `_RolledBack` only if nothing was stored."""
    committed = False

    def mark_committed() -> None:
        nonlocal committed
        committed = True

    applied = Applied()
    try:
        with transaction.atomic():
            # Registered first, so it runs first: a later on-commit hook that raises (a
            # service's Celery send with the broker down) must not make a stored batch look
            # failed and be applied again.
            transaction.on_commit(mark_committed)
            applied = batch_apply(batch)
    except Exception as exc:
        if not committed:
            raise _RolledBack from exc
        logger.exception("an on-commit hook failed; the batch itself is stored")
    return applied


@dataclass
class _Read:
    """One XREADGROUP's worth of entries, parsed, with the ids to acknowledge per stream."""

    batch: Batch = field(default_factory=Batch)
    # (stream, id, kind, parsed entry, raw data) for each well-formed entry, in apply order.
    entries: list[tuple[str, bytes, Kind, Any, bytes | None]] = field(default_factory=list)
    malformed: dict[str, list[bytes]] = field(default_factory=dict)


class Ingestor:
    """Consume the telemetry streams until `stop()`; `run_once()` does one pass (for tests)."""

    def __init__(self, config: IngestConfig, *, client: redis.Redis | None = None) -> None:
        self.config = config
        self.redis = client or redis.Redis.from_url(
            config.redis_url,
            # XREADGROUP BLOCK holds the socket open; the timeout must outlast it.
            socket_timeout=config.block_ms / 1000 + 10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )
        self.streams: dict[Kind, str] = {kind: stream_name(config.prefix, kind) for kind in KINDS}
        self._kind_of = {name: kind for kind, name in self.streams.items()}
        self.dead_letter_stream = f"{config.prefix}:dead"
        self._stopping = threading.Event()
        self._groups_ready = False
        # Start with our own pending entries: whatever a previous run of this consumer read
        # and did not get to acknowledge.
        self._read_pending = True
        self._failures = 0
        self._next_claim_at = 0.0

    # ---- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the current batch, then return from `run()`. Safe from a signal handler."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def ensure_groups(self) -> None:
        for name in self.streams.values():
            try:
                self.redis.xgroup_create(name, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    def run(self) -> None:
        """Loop until `stop()`. Reconnects to Redis and retries failed batches with backoff."""
        try:
            logger.info(
                "ingest consumer %r reading %s",
                self.config.consumer,
                ", ".join(self.streams.values()),
            )
            self._loop()
        finally:
            # Connections are per thread; leave none open behind a stopped loop.
            connections.close_all()
        logger.info("ingest consumer %r stopped", self.config.consumer)

    def _loop(self) -> None:
        backoff = self.config.backoff_s
        while not self.stopping:
            try:
                self.run_once()
            except _REDIS_ERRORS as exc:
                logger.error("redis unavailable (%s); retrying in %.1fs", exc, backoff)
                # Redis may come back empty (restarted without persistence): recreate the
                # groups, and re-read our pending entries in case the last ack was lost.
                self._groups_ready = False
                self._read_pending = True
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # A stream (and its group) was deleted under us; make them again.
                logger.error("consumer group missing (%s); recreating it", exc)
                self._groups_ready = False
            except BatchFailed as exc:
                logger.error("batch rolled back (%s); retrying in %.1fs", exc.__cause__, backoff)
            else:
                backoff = self.config.backoff_s
                continue
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self.config.max_backoff_s)

    def run_once(self) -> int:
        """Read and apply one batch. Returns the number of entries acknowledged.

        Raises a Redis connection error, or `BatchFailed` when the batch was rolled back.
        """
        # A long-lived process outside Django's request cycle must drop broken and expired
        # connections itself.
        close_old_connections()
        if not self._groups_ready:
            self.ensure_groups()
        if time.monotonic() >= self._next_claim_at:
            self.reclaim_and_trim()
        read = self._read()
        if read is None:
            return 0
        acked = self._ack(read.malformed)
        if not read.entries:
            return acked
        try:
            applied = _commit(read.batch)
        except _RolledBack as failure:
            # The entries stay pending and are read again from Redis.
            exc = failure.__cause__
            self._read_pending = True
            self._failures += 1
            transient = isinstance(exc, _TRANSIENT_DB_ERRORS)
            if transient or self._failures < self.config.isolate_after:
                raise BatchFailed(repr(exc)) from exc
            # A poison entry (or a bug a service trips on) must not stop everything else.
            logger.error(
                "batch failed %d times (%r); trying its entries one by one", self._failures, exc
            )
            return acked + self._apply_one_by_one(read)
        self._failures = 0
        acked += self._ack(_ids_by_stream(read))
        self._fan_out(applied)
        batch = read.batch
        logger.debug(
            "stored a batch: %d points, %d lines, %d events, %d heartbeats (%d fenced)",
            len(batch.metrics),
            len(batch.logs),
            len(batch.events),
            len(batch.health),
            applied.fenced,
        )
        return acked

    # ---- reading -----------------------------------------------------------------------------

    def _read(self) -> _Read | None:
        if self._read_pending:
            response = self._xreadgroup("0", block=None)
            if _is_empty(response):
                self._read_pending = False
            else:
                return self._parse(response)
        response = self._xreadgroup(">", block=self.config.block_ms)
        return None if _is_empty(response) else self._parse(response)

    def _xreadgroup(self, last_id: str, *, block: int | None) -> list[Any]:
        response = self.redis.xreadgroup(
            GROUP,
            self.config.consumer,
            dict.fromkeys(self.streams.values(), last_id),
            count=self.config.batch,
            block=block,
        )
        return cast(list[Any], response or [])

    def _parse(self, response: list[Any]) -> _Read:
        read = _Read()
        by_kind: dict[Kind, list[tuple[str, bytes, Kind, Any, bytes | None]]] = {
            kind: [] for kind in KINDS
        }
        for raw_name, messages in response:
            name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
            kind = self._kind_of[name]
            for entry_id, fields in messages:
                try:
                    parsed = entry_parse(kind, fields)
                except MalformedEntry as exc:
                    logger.warning("skipping malformed entry %s %s: %s", name, entry_id, exc)
                    read.malformed.setdefault(name, []).append(entry_id)
                    continue
                by_kind[kind].append((name, entry_id, kind, parsed, fields.get(b"data")))
                getattr(read.batch, kind).append(parsed)
        # The order batch_apply uses: points and lines before the events that may finish a job.
        for kind in KINDS:
            read.entries.extend(by_kind[kind])
        return read

    # ---- the slow path -----------------------------------------------------------------------

    def _apply_one_by_one(self, read: _Read) -> int:
        """Apply each entry in its own transaction; dead-letter those that still fail alone."""
        acked = 0
        applied = Applied()
        for name, entry_id, kind, parsed, raw in read.entries:
            single = Batch()
            getattr(single, kind).append(parsed)
            try:
                one = _commit(single)
            except _RolledBack as failure:
                exc = failure.__cause__
                if isinstance(exc, _TRANSIENT_DB_ERRORS):
                    self._fan_out(applied)
                    raise BatchFailed(repr(exc)) from exc
                logger.error(
                    "moving entry %s %s to %s: %r", name, entry_id, self.dead_letter_stream, exc
                )
                self.redis.xadd(
                    self.dead_letter_stream,
                    {"stream": name, "id": entry_id, "data": raw or b"", "error": repr(exc)},
                    maxlen=self.config.dead_letter_maxlen,
                    approximate=True,
                )
            else:
                for job_id, points in one.points.items():
                    applied.points.setdefault(job_id, []).extend(points)
                for job_id, lines in one.lines.items():
                    applied.lines.setdefault(job_id, []).extend(lines)
            acked += self._ack({name: [entry_id]})
        self._failures = 0
        self._fan_out(applied)
        return acked

    # ---- acknowledging, fan-out, housekeeping ------------------------------------------------

    def _ack(self, ids: dict[str, list[bytes]]) -> int:
        ids = {name: entry_ids for name, entry_ids in ids.items() if entry_ids}
        if not ids:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for name, entry_ids in ids.items():
            pipe.xack(name, GROUP, *entry_ids)
        pipe.execute()
        return sum(len(entry_ids) for entry_ids in ids.values())

    def _fan_out(self, applied: Applied) -> None:
        # One event per job per batch, in one fan-out. It is sent on commit (we are past it,
        # so at once), and a channel-layer failure is swallowed: browsers backfill from
        # PostgreSQL.
        events.telemetry_added(applied.points, applied.lines)

    def reclaim_and_trim(self) -> None:
        """Take over entries a dead consumer left pending, and trim what every group acked."""
        self._next_claim_at = time.monotonic() + self.config.claim_every_s
        for name in self.streams.values():
            claimed = 0
            cursor: bytes | str = "0-0"
            while True:
                response = self.redis.xautoclaim(
                    name,
                    GROUP,
                    self.config.consumer,
                    min_idle_time=self.config.claim_idle_ms,
                    start_id=cursor,
                    count=self.config.batch,
                )
                cursor, messages = response[0], response[1]
                claimed += len(messages)
                if cursor in (b"0-0", "0-0"):
                    break
            if claimed:
                logger.warning("claimed %d idle entries of %s from dead consumers", claimed, name)
                self._read_pending = True
            self._trim(name)

    def _trim(self, name: str) -> None:
        # Keep every entry some group has not acknowledged: trim below the oldest pending entry
        # or, where nothing is pending, below the last delivered one.
        floor: tuple[int, int] | None = None
        for group in self.redis.xinfo_groups(name):
            if group["pending"]:
                summary = self.redis.xpending(name, group["name"])
                candidate = parse_stream_id(summary["min"])
            else:
                candidate = parse_stream_id(group["last-delivered-id"])
            floor = candidate if floor is None else min(floor, candidate)
        if floor is not None and floor > (0, 0):
            self.redis.xtrim(name, minid=f"{floor[0]}-{floor[1]}", approximate=True)


def _ids_by_stream(read: _Read) -> dict[str, list[bytes]]:
    ids: dict[str, list[bytes]] = {}
    for name, entry_id, _kind, _parsed, _raw in read.entries:
        ids.setdefault(name, []).append(entry_id)
    return ids


def _is_empty(response: list[Any]) -> bool:
    return not any(messages for _name, messages in response)
