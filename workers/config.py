"""The node side's settings, read from the environment when asked and never at import time.

A node has no Django settings module: the agent, the launcher and the trainer each call these
helpers when they need a value, so a test (or the agent, for the processes it starts) can set
the environment first. A malformed value raises `ConfigError` naming the variable, rather than
falling back to a default that would hide a typo on a production node.

Secrets (the broker URL carries Redis credentials) may come from `<NAME>_FILE` instead.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}(,[A-Za-z0-9_.:@-]{1,15})*$")


class ConfigError(ValueError):
    """A node setting in the environment is missing or malformed."""


def _raw(name: str) -> str | None:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _float(name: str, default: float, *, minimum: float, inclusive: bool) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r} is not a number") from exc
    too_small = number < minimum if inclusive else number <= minimum
    if too_small or number != number or number in (float("inf"), float("-inf")):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ConfigError(f"{name}={value!r} must be a finite number {bound}")
    return number


def redis_url() -> str:
    value = _raw("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL must be a redis://, rediss:// or unix:// URL, not {value!r}")
    return value


def stream_prefix() -> str:
    value = _raw("TRAINYARD_STREAM_PREFIX") or "trainyard"
    if any(ch.isspace() for ch in value):
        raise ConfigError(f"TRAINYARD_STREAM_PREFIX={value!r} must not contain whitespace")
    return value


def validate_node_name(name: str, *, source: str = "node name") -> str:
    # The name becomes a queue name and a directory name: keep it to a safe alphabet.
    if not _NODE_NAME.match(name):
        raise ConfigError(
            f"{source} {name!r} must be 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def node_name() -> str:
    value = _raw("TRAINYARD_NODE_NAME")
    if value is None:
        raise ConfigError("TRAINYARD_NODE_NAME must be set (or pass --name to the node agent)")
    return validate_node_name(value, source="TRAINYARD_NODE_NAME")


def node_address() -> str:
    """The address the other nodes of a gang reach this node on (its rendezvous and Gloo/NCCL
    traffic): TRAINYARD_NODE_ADDRESS, else the local address of the route to Redis's host.

    Every node reaches Redis, so the interface that routes there is the one a multi-host
    cluster shares; only a node whose Redis is on loopback (one machine) says 127.0.0.1.
    """
    value = _raw("TRAINYARD_NODE_ADDRESS")
    if value is None:
        return route_address(urlsplit(redis_url()).hostname or "127.0.0.1")
    if any(ch.isspace() for ch in value) or "/" in value:
        raise ConfigError(f"TRAINYARD_NODE_ADDRESS={value!r} is not a host name or address")
    return value


def route_address(host: str) -> str:
    """This machine's source address for traffic to `host`.

    A UDP connect sends nothing: it only asks the kernel which route, and so which local
    address, a packet to `host` would take."""
    try:
        infos = socket.getaddrinfo(host, 6379, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise ConfigError(
            f"cannot resolve Redis's host {host!r} to find this node's address ({exc}); "
            "set TRAINYARD_NODE_ADDRESS"
        ) from exc
    family, _, _, _, target = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(target)
        except OSError as exc:
            raise ConfigError(
                f"no route to Redis's host {host!r} to find this node's address ({exc}); "
                "set TRAINYARD_NODE_ADDRESS"
            ) from exc
        return str(probe.getsockname()[0])


def node_cpu_slots() -> int:
    value = _raw("TRAINYARD_NODE_CPU_SLOTS")
    if value is None:
        return os.cpu_count() or 1
    try:
        slots = int(value)
    except ValueError as exc:
        raise ConfigError(f"TRAINYARD_NODE_CPU_SLOTS={value!r} is not an integer") from exc
    if slots < 1:
        raise ConfigError(f"TRAINYARD_NODE_CPU_SLOTS={slots} must be at least 1")
    return slots


def node_state_dir(name: str) -> Path:
    """Where this node keeps attempt directories and its dataset cache (absolute)."""
    value = _raw("TRAINYARD_NODE_STATE_DIR")
    path = Path(value) if value else Path(".trainyard") / f"node-{validate_node_name(name)}"
    return path.expanduser().resolve()


def heartbeat_s() -> float:
    return _float("TRAINYARD_HEARTBEAT_S", 2.0, minimum=0.0, inclusive=False)


def cancel_grace_s() -> float:
    return _float("TRAINYARD_CANCEL_GRACE_S", 5.0, minimum=0.0, inclusive=True)


def rendezvous_timeout_s() -> float:
    """How long a multi-node attempt waits for all its nodes to join before it fails."""
    return _float("TRAINYARD_RENDEZVOUS_TIMEOUT_S", 120.0, minimum=1.0, inclusive=True)


def node_ifname() -> str | None:
    """The network interface(s) Gloo and NCCL should use, when the default guess is wrong."""
    value = _raw("TRAINYARD_NODE_IFNAME")
    if value is not None and not _IFNAME.match(value):
        raise ConfigError(f"TRAINYARD_NODE_IFNAME={value!r} is not an interface name")
    return value


def stream_maxlen() -> int:
    """Approximate cap on each stream's length, so a node never fills Redis if ingest stops."""
    value = _raw("TRAINYARD_STREAM_MAXLEN")
    if value is None:
        return 100_000
    try:
        maxlen = int(value)
    except ValueError as exc:
        raise ConfigError(f"TRAINYARD_STREAM_MAXLEN={value!r} is not an integer") from exc
    if maxlen < 1000:
        raise ConfigError(f"TRAINYARD_STREAM_MAXLEN={maxlen} must be at least 1000")
    return maxlen
