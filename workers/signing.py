"""Run and cancel messages carry an HMAC made with a key the portal and the nodes share.

Anyone who can write to a node's queue in Redis could otherwise make it run what they like.
The portal signs the canonical JSON of (task name, arguments) with HMAC-SHA256 and sends the
signature as the task's last argument; the node recomputes it and compares in constant time,
refusing an unsigned or altered message before it looks at the spec. The task name is inside
the MAC, so a signature for one task is no use on another.

The key comes from TRAINYARD_NODE_SECRET or TRAINYARD_NODE_SECRET_FILE (the local run
generates one per state directory). It is read when a message is signed or checked, never at
import time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from workers import config

SECRET_ENV = "TRAINYARD_NODE_SECRET"  # noqa: S105 - the variable's name, not a secret
# Shorter keys are guessable offline from one signed message.
MIN_SECRET_BYTES = 32


def node_secret() -> bytes:
    """The shared signing key; ConfigError when it is missing or too short."""
    value = config.raw_setting(SECRET_ENV)
    if value is None:
        raise config.ConfigError(
            f"{SECRET_ENV} (or {SECRET_ENV}_FILE) must be set: it signs the portal's run "
            "messages, and a node refuses unsigned ones"
        )
    key = value.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise config.ConfigError(f"{SECRET_ENV} must be at least {MIN_SECRET_BYTES} bytes")
    return key


def canonical_bytes(task: str, args: list[Any]) -> bytes:
    """One byte string per message, whatever order a JSON round trip left the keys in."""
    return json.dumps(
        {"task": task, "args": args},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode()


def sign(task: str, args: list[Any], *, key: bytes | None = None) -> str:
    digest = hmac.new(key or node_secret(), canonical_bytes(task, args), hashlib.sha256)
    return digest.hexdigest()


def signed_args(task: str, args: list[Any], *, key: bytes | None = None) -> list[Any]:
    """`args` with the signature appended: what the portal sends."""
    return [*args, sign(task, args, key=key)]


def signature_problem(
    task: str, args: list[Any], signature: object, *, key: bytes | None = None
) -> str | None:
    """Why the message must be refused, or None when its signature is good."""
    if not isinstance(signature, str) or not signature:
        return "the message is not signed"
    try:
        expected = sign(task, args, key=key)
    except (TypeError, ValueError):
        return "the message is not canonical JSON"
    if not hmac.compare_digest(expected, signature):
        return "the signature does not match (altered, or signed with another key)"
    return None
