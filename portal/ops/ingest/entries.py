"""Parse and check stream entries before anything touches the database.

Nodes are trusted to be honest but not to be bug-free: an entry that fails these checks is
logged, acknowledged and skipped, so one bad entry can never wedge a stream. The checks are
also what keeps a batch's INSERT from failing on a value PostgreSQL would refuse (a NUL byte in
a log line, an integer past the column's range).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, Literal, cast

from portal.lib.realtime import json_finite
from workers.messages import (
    AttemptExitedEntry,
    AttemptStartedEntry,
    EventEntry,
    HealthEntry,
    LogEntry,
    MetricEntry,
)

Kind = Literal["metrics", "logs", "events", "health"]
KINDS: tuple[Kind, ...] = ("metrics", "logs", "events", "health")

# PositiveIntegerField is a PostgreSQL `integer`; ids are `bigint`.
_MAX_INT = 2**31 - 1
_MAX_ID = 2**63 - 1
# A runaway line (a progress bar without newlines, a dumped tensor) is cut, not refused.
MAX_LINE_CHARS = 16_384


class MalformedEntry(ValueError):
    """A stream entry that cannot be understood; it is acknowledged and skipped."""


def _int(data: dict[str, Any], key: str, *, maximum: int = _MAX_INT) -> int:
    value = data.get(key)
    # bool is an int subclass; `true` is never a valid count.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise MalformedEntry(f"{key} must be an integer in [0, {maximum}], not {value!r}")
    return value


def _id(data: dict[str, Any], key: str) -> int:
    value = _int(data, key, maximum=_MAX_ID)
    if value == 0:
        raise MalformedEntry(f"{key} must be a positive id")
    return value


def _number(data: dict[str, Any], key: str, *, finite: bool = True) -> float:
    value = data.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise MalformedEntry(f"{key} must be a number, not {value!r}")
    number = float(value)
    if finite and not math.isfinite(number):
        raise MalformedEntry(f"{key} must be finite, not {value!r}")
    return number


def _optional_number(data: dict[str, Any], key: str) -> float | None:
    if data.get(key) is None:
        return None
    return _number(data, key, finite=False)


def _str(data: dict[str, Any], key: str, *, choices: frozenset[str] | None = None) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise MalformedEntry(f"{key} must be a string, not {value!r}")
    if choices is not None and value not in choices:
        raise MalformedEntry(f"{key} must be one of {sorted(choices)}, not {value!r}")
    return value


def _ts(data: dict[str, Any]) -> float:
    ts = _number(data, "ts")
    try:
        datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise MalformedEntry(f"ts {ts!r} is not a time") from exc
    return ts


def decode(fields: dict[bytes, bytes] | None) -> dict[str, Any]:
    """The JSON object in an entry's `data` field."""
    if not fields:
        # XREADGROUP and XAUTOCLAIM return entries trimmed from the stream with no fields.
        raise MalformedEntry("entry has no fields (deleted from the stream?)")
    raw = fields.get(b"data")
    if raw is None:
        raise MalformedEntry("entry has no 'data' field")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEntry(f"data is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedEntry("data is not a JSON object")
    return data


def parse_metric(data: dict[str, Any]) -> MetricEntry:
    return {
        "job": _id(data, "job"),
        "attempt": _id(data, "attempt"),
        "seq": _int(data, "seq"),
        "split": cast(Literal["train", "val"], _str(data, "split", choices=_SPLITS)),
        "step": _int(data, "step"),
        "epoch": _int(data, "epoch"),
        # A diverging run reports NaN or inf loss; that is a fact worth keeping, not an error.
        "loss": _number(data, "loss", finite=False),
        "accuracy": _optional_number(data, "accuracy"),
        "ts": _ts(data),
    }


def parse_log(data: dict[str, Any]) -> LogEntry:
    # PostgreSQL text cannot hold NUL; a binary blob on stdout must not poison the batch.
    line = _str(data, "line").replace("\x00", "\ufffd")[:MAX_LINE_CHARS]
    return {
        "job": _id(data, "job"),
        "attempt": _id(data, "attempt"),
        "node_rank": _int(data, "node_rank"),
        "seq": _int(data, "seq"),
        "stream": cast(Literal["stdout", "stderr"], _str(data, "stream", choices=_STREAMS)),
        "line": line,
        "ts": _ts(data),
    }


def parse_event(data: dict[str, Any]) -> EventEntry:
    kind = _str(data, "type", choices=_EVENT_TYPES)
    common = {
        "job": _id(data, "job"),
        "attempt": _id(data, "attempt"),
        "node": _str(data, "node"),
        "node_rank": _int(data, "node_rank"),
        "ts": _ts(data),
    }
    if kind == "attempt.started":
        return cast(AttemptStartedEntry, {"type": kind, **common})
    exit_code = data.get("exit_code")
    if not isinstance(exit_code, int) or isinstance(exit_code, bool):
        raise MalformedEntry(f"exit_code must be an integer, not {exit_code!r}")
    cancelled = data.get("cancelled")
    if not isinstance(cancelled, bool):
        raise MalformedEntry(f"cancelled must be a boolean, not {cancelled!r}")
    exited = {
        "type": kind,
        **common,
        "exit_code": exit_code,
        "cancelled": cancelled,
        "reason": _str(data, "reason").replace("\x00", "\ufffd"),
    }
    # Optional: a node from before the field existed leaves it out, which means retryable.
    retryable = data.get("retryable", True)
    if not isinstance(retryable, bool):
        raise MalformedEntry(f"retryable must be a boolean, not {retryable!r}")
    exited["retryable"] = retryable
    return cast(AttemptExitedEntry, exited)


def parse_health(data: dict[str, Any]) -> HealthEntry:
    node = _str(data, "node")
    if not node or len(node) > 100:
        raise MalformedEntry(f"node must be a name of 1 to 100 characters, not {node!r}")
    for key in ("hostname", "address"):
        _str(data, key)
    for key in ("cpu_slots", "gpu_count"):
        _int(data, key)
    for key in ("memory_used", "memory_total", "disk_used", "disk_total"):
        _int(data, key, maximum=_MAX_ID)
    _number(data, "cpu_percent")
    _ts(data)
    gpus = data.get("gpus")
    if not isinstance(gpus, list) or not all(isinstance(gpu, dict) for gpu in gpus):
        raise MalformedEntry("gpus must be a list of objects")
    attempts = data.get("running_attempts")
    if not isinstance(attempts, list) or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in attempts
    ):
        raise MalformedEntry("running_attempts must be a list of attempt ids")
    # The node's own report, as sent: it is stored whole on the Node row and shown to admins.
    # NVML can read NaN (a sensor that is not there); PostgreSQL's JSON has no NaN, and one such
    # heartbeat would fail its batch on every retry, so a missing reading becomes null.
    return cast(HealthEntry, json_finite(data))


_SPLITS = frozenset({"train", "val"})
_STREAMS = frozenset({"stdout", "stderr"})
_EVENT_TYPES = frozenset({"attempt.started", "attempt.exited"})
