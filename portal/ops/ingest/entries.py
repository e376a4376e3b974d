"""Parse and check stream entries before anything touches the database.

Every entry is decoded through its declaration in `workers.messages`, the same one the node
built it with: the types, ranges and lengths there are what PostgreSQL can store (no NUL in a
log line, no integer past its column), so a batch's INSERT never fails on a node's value.
Nodes are trusted to be honest but not to be bug-free: an entry that fails is logged,
acknowledged and skipped with the reason (`$.seq: Expected int >= 0`), so one bad entry can
never wedge a stream.
"""

from __future__ import annotations

from typing import Any, Literal

from workers.messages import (
    Entry,
    EventEntry,
    HealthEntry,
    LogEntry,
    MessageInvalid,
    MetricEntry,
    RankStatsEntry,
    decode,
)

Kind = Literal["metrics", "ranks", "logs", "events", "health"]
KINDS: tuple[Kind, ...] = ("metrics", "ranks", "logs", "events", "health")

_TYPES: dict[Kind, Any] = {
    "metrics": MetricEntry,
    "ranks": RankStatsEntry,
    "logs": LogEntry,
    "events": EventEntry,
    "health": HealthEntry,
}


class MalformedEntry(ValueError):
    """A stream entry that cannot be understood; it is acknowledged and skipped."""


def entry_parse(kind: Kind, fields: dict[bytes, bytes] | None) -> Entry:
    """The checked entry in a stream entry's `data` field, or `MalformedEntry` saying why not."""
    if not fields:
        # XREADGROUP and XAUTOCLAIM return entries trimmed from the stream with no fields.
        raise MalformedEntry("entry has no fields (deleted from the stream?)")
    raw = fields.get(b"data")
    if raw is None:
        raise MalformedEntry("entry has no 'data' field")
    try:
        entry: Entry = decode(raw, _TYPES[kind])
    except MessageInvalid as exc:
        raise MalformedEntry(str(exc)) from exc
    return entry
